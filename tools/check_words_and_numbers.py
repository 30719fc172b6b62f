"""Check that a notebook's words agree with its numbers, so that drift cannot come back unnoticed.

    python tools/check_words_and_numbers.py notebooks/*.ipynb     # report; exit 1 on any problem

nbval cannot see drift: the cells that print measurements are `nbval-ignore-output`, and markdown is
never compared with anything. Three checks, on the committed (quick-mode) notebook:

1. **describe() rows.** A cell that calls ``experiments.describe(...)`` must show exactly what the
   current code prints for that call in quick mode (the device line, which depends on the machine,
   is not compared). A settings change without re-executing the notebook fails here.
2. **Numbers in the markdown.** Every decimal number, percentage and number with thousands separators
   in a markdown cell (outside code, formulas and link targets) must appear in one of the notebook's
   outputs, or be a figure cited from elsewhere, listed with its source in
   ``notebooks/cited_figures.json``. A cited figure whose source is a file of this repository must
   appear in that file, so a benchmark table and the text that quotes it cannot part either.
3. **Progress bars.** A stored bar that stops short of its total must have a line in the same cell
   that says why (a time limit, an interruption).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CITED_FIGURES = REPO / "notebooks" / "cited_figures.json"

# A number that states something: 0.59, 85.97%, 30%, 11,689,512, x4.5. Not part of a name (ResNet-56,
# 3x3, conv1, v1.5) and not a bare small integer (layer counts, years, "two epochs").
NUMBER = re.compile(r"(?<![A-Za-wyz_\d.\-/])(\d{1,3}(?:,\d{3})+(?:\.\d+)?%?|\d+\.\d+%?|\d+%)(?![\w.]\w|\d)")
# What is not a measurement: fenced and inline code, display and inline math, link targets, HTML
# tags, and the numbers of references and versions ("Section 4.2", "Table 6", "PyTorch 2.6").
NOT_PROSE = re.compile(r"```.*?```|`[^`]*`|\$\$.*?\$\$|\$[^$\n]+\$|\]\([^)]*\)|<[^>]+>"
                       r"|\b(?:Sections?|Sec\.|Tables?|Fig\.|Figures?|Eq\.|Python|PyTorch|torch|torchvision|"
                       r"JupyterLab|ipywidgets|nbconvert|version|v)\s*\d+(?:\.\d+)*", re.DOTALL)
DEVICE_LINE = re.compile(r"^device: .*$", re.MULTILINE)
BAR = re.compile(r"(\d+)%\|[^|]*\|\s*([\d,]+)/([\d,]+)")
WHY_STOPPED = re.compile(r"(?i)time limit|time budget|stopped|interrupted")


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def output_text(output: dict) -> str:
    """What a reader sees of one output, as text."""
    if "text" in output:
        return "".join(output["text"])
    data = output.get("data", {})
    return "\n".join("".join(data.get(kind, "")) for kind in ("text/plain", "text/markdown", "text/html"))


def all_outputs(notebook: dict) -> str:
    return "\n".join(output_text(output) for cell in notebook.get("cells", []) for output in cell.get("outputs", []))


def markdown_numbers(source: str) -> list[str]:
    """The numbers a markdown cell states, in order."""
    return [match.group(1) for match in NUMBER.finditer(NOT_PROSE.sub(" ", source))]


def shown_in(number: str, text: str) -> bool:
    """``number`` (without its % sign, with or without thousands separators) appears in ``text`` as a
    number of its own: 85.9 is not found in 85.97, nor 30 in 30.5."""
    bare = number.rstrip("%")
    forms = {bare, bare.replace(",", "")}
    return any(re.search(r"(?<![\d.,])" + re.escape(form) + r"(?!\d|[.,]\d)", text) for form in forms)


def load_cited(path: Path = CITED_FIGURES) -> dict[str, list[dict]]:
    """notebook stem (or "*" for every notebook) -> [{"figure": ..., "source": ..., "file": ...}]."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def cited_problems(cited: dict[str, list[dict]]) -> list[str]:
    """A cited figure without a source, or quoted from a repository file that no longer holds it."""
    found = []
    for notebook, figures in cited.items():
        for entry in figures:
            if not entry.get("source"):
                found.append(f"cited_figures.json, {notebook}: {entry.get('figure')!r} has no source")
            file = entry.get("file")
            if file and not shown_in(entry["figure"], (REPO / file).read_text(encoding="utf-8")):
                found.append(f"cited_figures.json, {notebook}: {entry['figure']!r} is not in {file} any more "
                             f"(the text quotes a figure its source no longer has)")
    return found


def number_problems(notebook: dict, name: str, cited: dict[str, list[dict]]) -> list[str]:
    """Markdown numbers that no output shows and no citation covers."""
    shown = all_outputs(notebook)
    allowed = {entry["figure"] for key in ("*", name) for entry in cited.get(key, [])}
    found = []
    for number, cell in enumerate(notebook.get("cells", []), start=1):
        if cell.get("cell_type") != "markdown":
            continue
        for figure in markdown_numbers("".join(cell.get("source", ""))):
            if figure not in allowed and not shown_in(figure, shown):
                found.append(f"cell {number}: the markdown says {figure!r}, which no output of the notebook "
                             f"shows (drift? generate it in a cell, or cite it in notebooks/cited_figures.json)")
    return found


def bar_problems(notebook: dict) -> list[str]:
    """Progress bars that stop short of their total with no line saying why."""
    found = []
    for number, cell in enumerate(notebook.get("cells", []), start=1):
        texts = [output_text(output) for output in cell.get("outputs", [])]
        for text in texts:
            for match in BAR.finditer(text):
                done, total = int(match.group(2).replace(",", "")), int(match.group(3).replace(",", ""))
                if done < total and not any(WHY_STOPPED.search(other) for other in texts):
                    found.append(f"cell {number}: a progress bar stops at {done}/{total} steps and no line "
                                 f"says why")
    return found


def describe_calls(source: str) -> list[tuple[tuple, dict]]:
    """The literal arguments of each ``experiments.describe(...)`` call in a code cell."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics: not a describe() cell
        return []
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "describe" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "experiments":
            calls.append((tuple(ast.literal_eval(arg) for arg in node.args),
                          {keyword.arg: ast.literal_eval(keyword.value) for keyword in node.keywords}))
    return calls


@contextlib.contextmanager
def quick_mode_environment():
    """The environment a notebook is executed in for committing (tools/clean_notebooks.py --execute)."""
    saved = {key: os.environ.get(key) for key in ("COURSE_MODE", "COURSE_TIME_BUDGET")}
    os.environ["COURSE_MODE"] = "quick"
    os.environ.pop("COURSE_TIME_BUDGET", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def describe_problems(notebook: dict) -> list[str]:
    """describe() outputs that differ from what the current code prints in quick mode."""
    from course_utils import experiments

    found = []
    for number, cell in enumerate(notebook.get("cells", []), start=1):
        if cell.get("cell_type") != "code":
            continue
        for args, kwargs in describe_calls("".join(cell.get("source", ""))):
            printed = io.StringIO()
            with quick_mode_environment(), contextlib.redirect_stdout(printed):
                experiments.describe(*args, **kwargs)
            expected = DEVICE_LINE.sub("device: -", printed.getvalue())
            committed = DEVICE_LINE.sub("device: -", "".join(
                output_text(output) for output in cell.get("outputs", [])
                if output.get("output_type") == "stream" and output.get("name") == "stdout"))
            if expected not in committed:
                stale = next((line for line in committed.splitlines() if line not in expected.splitlines()), "")
                found.append(f"cell {number}: the committed describe() output is stale (re-execute the notebook); "
                             f"first line that differs: {stale[:300]!r}")
    return found


def problems(notebook: dict, name: str, cited: dict[str, list[dict]] | None = None) -> list[str]:
    """Every disagreement between the notebook's words and its numbers. ``name``: the file's stem."""
    cited = load_cited() if cited is None else cited
    return describe_problems(notebook) + number_problems(notebook, name, cited) + bar_problems(notebook)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    cited = load_cited()
    report = cited_problems(cited)
    for path in args.notebooks:
        report += [f"{path}: {problem}" for problem in problems(read(path), path.stem, cited)]
    for line in report:
        print(line)
    return 1 if report else 0


if __name__ == "__main__":
    sys.exit(main())
