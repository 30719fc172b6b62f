"""Check the course's relative links: every file they name exists, and every #anchor is a heading there.

    python tools/check_links.py                      # README, CONTRIBUTING, docs/, benchmarks/, notebooks/
    python tools/check_links.py notebooks/02_*.ipynb # some files only

A link is checked where a reader follows it: on GitHub, in JupyterLab and on the course site, all of
which resolve a relative link against the folder of the file that holds it and turn a heading into
an anchor the way GitHub does ("## 4. Does it matter?" -> "#4-does-it-matter"). Links to web pages
(http, https, mailto) are not fetched: the machines that run this have no network.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILES = ["README.md", "CONTRIBUTING.md", "docs/*.md", "benchmarks/README.md", "data/README.md",
                 "data/results/README.md", "notebooks/*.ipynb"]
LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)\)")  # [text](target), not ![image](...)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def markdown_texts(path: Path) -> list[str]:
    """The markdown of a .md file, or of each markdown cell of a notebook."""
    if path.suffix == ".ipynb":
        notebook = json.loads(path.read_text(encoding="utf-8"))
        return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown"]
    return [path.read_text(encoding="utf-8")]


def links(text: str) -> list[str]:
    """The targets of the markdown links in ``text``, outside code."""
    return LINK.findall(CODE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[`*_~]", lambda m: "_" if m.group(0) == "_" else "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of every heading of a markdown file or notebook (with GitHub's -1, -2 for repeats)."""
    found, seen = set(), {}
    for text in markdown_texts(path):
        for line in CODE.sub("", text).split("\n"):
            if re.match(r"#{1,6} ", line):
                base = slug(line.lstrip("#").strip())
                count = seen.get(base, 0)
                found.add(base if count == 0 else f"{base}-{count}")
                seen[base] = count + 1
    return found


def broken_links(path: Path) -> list[str]:
    """One line per relative link of ``path`` that leads nowhere."""
    found = []
    for text in markdown_texts(path):
        for target in links(text):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            file_part, _, anchor = target.partition("#")
            destination = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)}: link {target!r}"
            if not destination.exists():
                found.append(f"{where}: no file {file_part!r} there")
            elif anchor and destination.suffix in (".md", ".ipynb") and anchor not in anchors(destination):
                found.append(f"{where}: {destination.name} has no heading with the anchor #{anchor}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="files to check (default: the course's documents)")
    args = parser.parse_args(argv)
    paths = [Path(f).resolve() for f in args.files] or \
        sorted({path for pattern in DEFAULT_FILES for path in ROOT.glob(pattern)})
    problems = [problem for path in paths for problem in broken_links(path)]
    print("\n".join(problems) if problems else f"{len(paths)} files: every relative link leads somewhere")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
