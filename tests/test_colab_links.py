"""tools/colab_links.py: one setting writes the Colab links and set-up cells; refuses while unset."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "colab_links.py"


def run(*args):
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True)


def course_copy(tmp_path):
    for name in ("notebooks", "README.md", "pyproject.toml"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    return tmp_path


def test_the_committed_set_up_cells_and_links_match_the_setting():
    result = run("--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_refuses_while_the_course_has_no_repository_and_changes_nothing(tmp_path):
    root = course_copy(tmp_path)
    before = {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}
    result = run("--root", str(root))
    assert result.returncode == 2
    assert 'repository = "https://github.com/OWNER/REPO"' in result.stderr and "Nothing was changed" in result.stderr
    assert before == {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


def test_a_github_repository_gives_every_notebook_a_badge_and_an_install_cell(tmp_path):
    root = course_copy(tmp_path)
    url = "https://github.com/example-owner/resnet-course"
    assert run("--root", str(root), "--repository", url).returncode == 0
    assert run("--root", str(root), "--repository", url, "--check").returncode == 0  # a second run would change nothing
    notebooks = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        assert (f"https://colab.research.google.com/github/example-owner/resnet-course/blob/main/notebooks/{path.name}"
                in "".join(cells[0]["source"]))
        assert f'COURSE_REPOSITORY = "{url}"' in "".join(cells[1]["source"])
    readme = (root / "README.md").read_text()
    assert readme.count("colab.research.google.com/github/example-owner") == len(notebooks)
    # The committed (unpublished) state is stale for this URL.
    assert run("--repository", url, "--check").returncode == 1
