"""Write the way through the course into every notebook: a map line at the top, a "next" line at the end.

    python tools/course_map.py            # write them
    python tools/course_map.py --check    # exit 1 if a notebook's map or last line is missing or stale

The map is the first line of each notebook's title cell: a link to the contents (README's notebook
table) and to the previous and next notebook, with the notebook's own place in bold. The last cell
of each notebook (tagged ``course-map``) links to the next notebook, or back to the contents after
the last one. Both are written from the notebooks' own titles, so a renamed or added notebook only
needs this command. Running it twice changes nothing the second time.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clean_notebooks import cell_text, read, set_text, write  # noqa: E402  (the one home of notebook files)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CONTENTS = "../README.md#notebooks"
MAP_START = "[Contents]("  # how a map line begins: the mark this tool recognises as its own
TAG = "course-map"


def title(notebook: dict) -> str:
    """ "02 · Keep what you had: the residual block" from the title cell's "# ..." line."""
    for line in cell_text(notebook["cells"][0]).split("\n"):
        if line.startswith("# "):
            return line[2:].strip()
    raise ValueError("the first cell has no '# NN · Title' line")


def short(full_title: str) -> str:
    """The title up to its first colon or question mark: what fits in a map line."""
    return re.match(r"[^:?]*\??", full_title).group(0).strip()


def map_line(paths: list[Path], titles: list[str], index: int) -> str:
    parts = [f"[Contents]({CONTENTS})"]
    if index > 0:
        parts.append(f"[← {short(titles[index - 1])}]({paths[index - 1].name})")
    parts.append(f"**{short(titles[index])}**")
    if index + 1 < len(paths):
        parts.append(f"[{short(titles[index + 1])} →]({paths[index + 1].name})")
    return " · ".join(parts)


def last_line(paths: list[Path], titles: list[str], index: int) -> str:
    if index + 1 < len(paths):
        return (f"**Next:** [{titles[index + 1]}]({paths[index + 1].name}) · "
                f"[Contents]({CONTENTS})")
    return f"**The end of the course.** Back to the [contents]({CONTENTS})."


def with_map(notebook: dict, line: str, last: str) -> dict:
    """The notebook with its map line and last cell set (a new dict; the input is not changed)."""
    cells = [dict(cell) for cell in notebook["cells"]]
    lines = cell_text(cells[0]).split("\n")
    if lines[0].startswith(MAP_START):
        lines = lines[2:] if len(lines) > 1 and lines[1] == "" else lines[1:]
    first = dict(cells[0])
    set_text(first, "\n".join([line, ""] + lines))
    cells[0] = first
    if TAG in cells[-1].get("metadata", {}).get("tags", []):
        cells = cells[:-1]
    end = {"cell_type": "markdown", "id": "course-map-next", "metadata": {"tags": [TAG]}, "source": []}
    set_text(end, last)
    return {**notebook, "cells": cells + [end]}


def course() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report stale maps, change nothing")
    args = parser.parse_args(argv)
    paths = course()
    notebooks = [read(path) for path in paths]
    titles = [title(notebook) for notebook in notebooks]
    stale = []
    for index, (path, notebook) in enumerate(zip(paths, notebooks)):
        mapped = with_map(notebook, map_line(paths, titles, index), last_line(paths, titles, index))
        if mapped == notebook:
            continue
        if args.check:
            stale.append(path.name)
        else:
            write(path, mapped)
            print(f"wrote the map of {path.name}")
    if stale:
        print(f"stale or missing course map in {', '.join(stale)}: run python tools/course_map.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
