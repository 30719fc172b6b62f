"""Write the "Open in Colab" links and every notebook's set-up cell from one repository setting.

    python tools/colab_links.py            # write links and set-up cells from pyproject.toml
    python tools/colab_links.py --check    # exit 1 if a notebook's set-up cell or links are stale

The setting is ``repository`` under ``[tool.course_utils]`` in pyproject.toml: the course's public
git URL, e.g. ``https://github.com/OWNER/REPO``. It is empty until the course is published, and then
this command refuses and changes nothing (README, "Publishing the course"). Once it is set, the
command rewrites, in every notebook, the first code cell (it installs the course from that URL with
pip when ``course_utils`` is missing, as on Colab) and, for a GitHub URL, an "Open in Colab" badge
under the title; and adds the links to the notebook table of README.md. Running it twice changes
nothing the second time. ``--repository URL`` uses another URL for one run (tools/simulate_colab.py
points it at a local clone).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clean_notebooks import cell_text, set_text  # noqa: E402  (the one home of notebook files)

ROOT = Path(__file__).resolve().parent.parent
SETUP_MARKER = "# Set-up: make `course_utils` importable"
BADGE = '<a href="{url}"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>'
COLAB = "https://colab.research.google.com/github/{owner_repo}/blob/{branch}/notebooks/{name}"

SETUP_CELL = '''# Set-up: make `course_utils` importable here, in a fresh kernel, or on Colab.
# Written by tools/colab_links.py from [tool.course_utils] in pyproject.toml: change it there.
import importlib.util, os, subprocess, sys

COURSE_REPOSITORY = {repository}  # the course's public git repository ("" = not published yet)
if importlib.util.find_spec("course_utils") is None:
    if os.path.isdir("../course_utils"):
        sys.path.insert(0, "..")  # opened from notebooks/ without `pip install -e .`
    elif COURSE_REPOSITORY:  # e.g. on Colab: fetch the course, install it with pip, and use it
        if not os.path.isdir("resnet-course"):
            subprocess.run(["git", "clone", "--depth", "1", COURSE_REPOSITORY, "resnet-course"], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "resnet-course"], check=True)
        sys.path.insert(0, os.path.abspath("resnet-course"))  # this kernel started before the install
    else:
        raise ModuleNotFoundError(
            "course_utils is not installed: run `pip install -r requirements.txt` in the course folder. "
            "Installing it from a URL needs the course's published repository (README, 'Publishing the course').")'''


def read_setting(root: Path) -> tuple[str, str]:
    """(repository, branch) from ``[tool.course_utils]`` in pyproject.toml."""
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    section = re.search(r"^\[tool\.course_utils\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if section is None:
        raise SystemExit(f"error: {root / 'pyproject.toml'} has no [tool.course_utils] section with a repository")
    values = dict(re.findall(r'^(\w+)\s*=\s*"([^"]*)"', section.group(1), re.M))
    return values.get("repository", "").strip(), values.get("branch", "main").strip() or "main"


def github_path(repository: str) -> str | None:
    """'OWNER/REPO' for a GitHub URL (https or git@), else None (no Colab link can point elsewhere)."""
    match = re.fullmatch(r"(?:https://github\.com/|git@github\.com:)([\w.-]+/[\w.-]+?)(?:\.git)?/?", repository)
    return match.group(1) if match else None


def updated_notebook(notebook: dict, name: str, repository: str, branch: str) -> dict:
    """The notebook with its set-up cell and Colab badge written for ``repository``."""
    setup = [cell for cell in notebook["cells"] if cell_text(cell).startswith(SETUP_MARKER)]
    if len(setup) != 1:
        raise SystemExit(f"error: {name} should have exactly one set-up cell starting {SETUP_MARKER!r}; "
                         f"found {len(setup)}")
    set_text(setup[0], SETUP_CELL.format(repository=json.dumps(repository)))
    title = notebook["cells"][0]
    lines = cell_text(title).split("\n")  # [course map, "",] "# 00 · Title", "", text ...
    at = next(i for i, line in enumerate(lines) if line.startswith("# "))  # the title line
    if len(lines) > at + 3 and "colab.research.google.com" in lines[at + 2]:
        del lines[at + 1:at + 3]  # the blank line and the badge written last time
    owner_repo = github_path(repository)
    if owner_repo:
        lines[at + 1:at + 1] = ["", BADGE.format(url=COLAB.format(owner_repo=owner_repo, branch=branch, name=name))]
    set_text(title, "\n".join(lines))
    return notebook


def updated_readme(text: str, repository: str, branch: str) -> str:
    """README.md with an "Open in Colab" link after each notebook in its table (GitHub URLs only)."""
    text = re.sub(r" \[\(Colab\)\]\([^)]*\)", "", text)
    owner_repo = github_path(repository)
    if not owner_repo:
        return text
    return re.sub(r"(\| \[(\d\d_\w+)\]\(notebooks/\2\.ipynb\))",
                  lambda m: m.group(1) + f" [(Colab)]({COLAB.format(owner_repo=owner_repo, branch=branch, name=m.group(2) + '.ipynb')})",
                  text)


def dump(notebook: dict) -> str:
    return json.dumps(notebook, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale set-up cells and links")
    parser.add_argument("--repository", help="use this URL instead of pyproject.toml's (e.g. a file:// clone)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the course folder (default: this repository)")
    args = parser.parse_args(argv)
    repository, branch = read_setting(args.root)
    repository = args.repository if args.repository is not None else repository
    if not repository and not args.check:
        print("error: the course has no public repository yet, so there is nothing to link to. Set\n"
              '  [tool.course_utils]\n  repository = "https://github.com/OWNER/REPO"\n'
              "in pyproject.toml (the URL learners can clone), run this command again and commit what it "
              "writes. Nothing was changed.", file=sys.stderr)
        return 2

    stale, changes = [], {}
    for path in sorted((args.root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        before = path.read_text(encoding="utf-8")
        after = dump(updated_notebook(json.loads(before), path.name, repository, branch))
        if after != before:
            stale.append(path.name)
            changes[path] = after
    readme = args.root / "README.md"
    before = readme.read_text(encoding="utf-8")
    after = updated_readme(before, repository, branch)
    if after != before:
        stale.append("README.md")
        changes[readme] = after

    if args.check:
        if stale:
            print(f"stale for repository {repository!r}: {', '.join(stale)}; run python tools/colab_links.py")
            return 1
        print(f"set-up cells and links match repository {repository!r}")
        return 0
    for path, text in changes.items():
        path.write_text(text, encoding="utf-8")
    print(f"wrote {len(changes)} file(s) for {repository}" + ("" if github_path(repository) else
          " (not a GitHub URL: set-up cells only, no Colab links)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
