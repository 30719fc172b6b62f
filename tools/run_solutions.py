"""Run every exercise solution of a notebook, after the notebook itself, and report the ones that fail.

    python tools/run_solutions.py notebooks/*.ipynb      # smoke mode; exit 1 if a solution raises

The solutions are markdown (folded ``<details>`` blocks), so nbval never runs them, and the test suite
only parses them (tests/test_course_navigation.py). This executes a copy of each notebook in a fresh
kernel, in smoke mode, with the code of its solutions appended in order, as a learner would paste
them under the last cell, and names each solution whose code raises. The notebook file is not changed.
A cell that is meant to raise (tagged ``raises-exception``) is not reported.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

FENCED_PYTHON = re.compile(r"```python\n(.*?)```", re.S)


def with_solutions(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``notebook`` with one code cell per fenced block of its solutions, at the end."""
    copy = nbformat.from_dict(notebook)
    for cell in notebook.cells:
        if "solution" in cell.metadata.get("tags", []):
            for block in FENCED_PYTHON.findall(cell.source):
                added = nbformat.v4.new_code_cell(block)
                added.metadata["solution"] = cell.get("id", "a solution")
                copy.cells.append(added)
    return copy


def failures(path: Path, mode: str = "smoke", timeout: int = 600) -> list[str]:
    """What failed when ``path`` ran with its solutions: one line per cell that raised unexpectedly."""
    notebook = with_solutions(nbformat.read(path, as_version=4))
    previous = os.environ.get("COURSE_MODE")
    os.environ["COURSE_MODE"] = mode  # the kernel inherits it
    try:
        NotebookClient(notebook, timeout=timeout, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if previous is None:
            os.environ.pop("COURSE_MODE")
        else:
            os.environ["COURSE_MODE"] = previous
    found = []
    for cell in notebook.cells:
        if cell.cell_type != "code" or "raises-exception" in cell.metadata.get("tags", []):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                where = f"solution {cell.metadata['solution']}" if "solution" in cell.metadata else \
                    f"cell {cell.get('id', '?')} (before the solutions ran)"
                found.append(f"{path.name}, {where}: {output.get('ename')}: {output.get('evalue', '')[:300]}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--mode", default="smoke", help="the run mode of the kernels (default: smoke)")
    args = parser.parse_args(argv)
    problems = []
    for path in args.notebooks:
        found = failures(path, args.mode)
        print(f"{path}: " + ("every solution ran" if not found else f"{len(found)} failed"), flush=True)
        problems += found
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
