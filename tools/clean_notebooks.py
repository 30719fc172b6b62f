"""Make the committed notebooks files a reader can trust, and check that they are.

    python tools/clean_notebooks.py notebooks/*.ipynb             # clean in place
    python tools/clean_notebooks.py --check notebooks/*.ipynb     # report, change nothing (the tests do this)
    python tools/clean_notebooks.py --execute notebooks/05_*.ipynb  # run top to bottom in quick mode, then clean

Cleaning removes volatile cell metadata (execution timestamps) and replaces the text that a
stored progress bar shows without a kernel ("0%| | 0/96", its state when it was first drawn)
with the bar's final state, read from the widget state that Jupyter saved with the notebook.
JupyterLab before the notebook is trusted, nbconvert's HTML and GitHub all show that text.

The check also reports what cleaning cannot mend: an absolute path of some machine in an output,
an interactive widget whose stored output has no picture or text for a reader without a kernel, and
an exercise solution that some view would show unasked. A solution is a markdown cell tagged
``solution`` holding one ``<details>`` block (code in a fenced block, then the answer): it stays folded
in JupyterLab before and after Run All, in nbconvert's HTML, on GitHub and on the course site, where
a collapsed code cell (``source_hidden``) would run with Run All and print its answer in every export.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VOLATILE_CELL_METADATA = ("execution", "ExecuteTime")  # nbclient's timing, jupyterlab-execute-time's
MACHINE_PATH = re.compile(r"(/root/|/home/\w|/Users/\w|/tmp/|/work/|/private/var/|site-packages|[A-Z]:\\\\Users)")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
BAR_WIDTH = 10  # characters of "█" in a full bar, as tqdm draws it in a terminal of no set width


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def write(path: Path, notebook: dict) -> None:
    # The layout Jupyter itself writes (indent 1, a final newline), so diffs stay small.
    path.write_text(json.dumps(notebook, sort_keys=True, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def cell_text(cell: dict) -> str:
    return "".join(cell["source"])


def set_text(cell: dict, text: str) -> None:
    """Store ``text`` as Jupyter does: a list of lines, each but the last ending in a newline."""
    lines = text.split("\n")
    cell["source"] = [line + "\n" for line in lines[:-1]] + [lines[-1]]


def widget_models(notebook: dict) -> dict:
    """model id -> saved model ({"model_name": ..., "state": {...}}); empty without saved state."""
    return notebook.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def progress_bar_text(model_id: str, models: dict) -> str | None:
    """The final text of a tqdm notebook bar (an HBox of HTML, progress, HTML), or None if the
    model is not such a bar."""
    box = models.get(model_id, {})
    children = [models.get(child.removeprefix("IPY_MODEL_"), {}) for child in box.get("state", {}).get("children", [])]
    names = [child.get("model_name") for child in children]
    if box.get("model_name") != "HBoxModel" or len(names) != 3 or names[0] != "HTMLModel" or \
            names[2] != "HTMLModel" or names[1] not in ("FloatProgressModel", "IntProgressModel"):
        return None
    left, bar, right = (child["state"] for child in children)
    maximum, value = bar.get("max") or 0, bar.get("value") or 0
    filled = round(BAR_WIDTH * value / maximum) if maximum else 0
    # tqdm's widget text uses figure spaces (U+2007) and HTML escapes; a reader wants plain text.
    plain = [html.unescape(part.get("value", "")).replace("\u2007", " ") for part in (left, right)]
    return f"{plain[0]}|{'█' * filled}{' ' * (BAR_WIDTH - filled)}|{plain[1]}"


def is_solution(cell: dict) -> bool:
    return "solution" in cell.get("metadata", {}).get("tags", [])


def is_folded_solution(cell: dict) -> bool:
    """A markdown cell that is one <details> block: folded in every view until the learner opens it."""
    text = "".join(cell.get("source", "")).strip()
    return cell.get("cell_type") == "markdown" and text.startswith("<details>") and text.endswith("</details>") \
        and text.count("<details>") == 1


def clean(notebook: dict) -> dict:
    """Remove volatile cell metadata; give every stored progress bar its final text. In place."""
    models = widget_models(notebook)
    for cell in notebook.get("cells", []):
        for key in VOLATILE_CELL_METADATA:
            cell.get("metadata", {}).pop(key, None)
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is not None:
                text = progress_bar_text(view.get("model_id", ""), models)
                if text is not None:
                    output["data"]["text/plain"] = text
    return notebook


def problems(notebook: dict) -> list[str]:
    """What a reader without a kernel would be misled by, or what a notebook file must not hold."""
    found = []
    models = widget_models(notebook)
    counts = [cell.get("execution_count") for cell in notebook.get("cells", [])
              if cell.get("cell_type") == "code" and "".join(cell.get("source", "")).strip()]
    if None in counts or counts != sorted(counts):
        found.append("execution counts missing or out of order: execute it top to bottom (--execute)")
    for number, cell in enumerate(notebook.get("cells", []), start=1):
        where = f"cell {number}"
        volatile = [key for key in VOLATILE_CELL_METADATA if key in cell.get("metadata", {})]
        if volatile:
            found.append(f"{where}: volatile metadata {volatile} (run this script to remove it)")
        if is_solution(cell) and not is_folded_solution(cell):
            found.append(f"{where}: an exercise solution that Run All or an export would show: make it a "
                         f"markdown cell holding one <details> block (the code in a fenced block inside it)")
        for output in cell.get("outputs", []):
            match = MACHINE_PATH.search(json.dumps(output))
            if match:
                found.append(f"{where}: an output shows a machine path ({match.group(0)!r}); print a relative "
                             f"path, or catch the expected error and print its message")
            data = output.get("data", {})
            if WIDGET_VIEW not in data:
                continue
            text = "".join(data.get("text/plain", ""))
            bar = progress_bar_text(data[WIDGET_VIEW].get("model_id", ""), models)
            if bar is not None and text != bar:
                found.append(f"{where}: a progress bar's stored text {text[:40]!r} is not its final state "
                             f"(run this script)")
            elif bar is None and "image/png" not in data and re.match(r"\w+\(children=", text):
                found.append(f"{where}: a widget shows only its repr ({text[:30]!r}...) without a kernel; "
                             f"give it a static picture (image/png) of its default view")
    return found


def execute(path: Path) -> float:
    """Run the notebook top to bottom in its folder (quick mode unless COURSE_MODE says otherwise),
    without timing metadata, and save it. Returns the seconds it took."""
    import ipykernel.kernelspec
    import nbformat
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from nbclient import NotebookClient

    class ThisPython(KernelSpecManager):
        """The kernel is the Python running this script (as pytest's --nbval-current-env), not
        whichever "python3" kernel is registered on the machine."""

        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return KernelSpec(resource_dir=ipykernel.kernelspec.RESOURCES, **ipykernel.kernelspec.get_kernel_dict())

    os.environ.setdefault("COURSE_MODE", "quick")  # the kernel inherits it
    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    kernel = KernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())
    NotebookClient(notebook, km=kernel, timeout=None, record_timing=False,  # no time limit per cell
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - started
    nbformat.write(notebook, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="report problems and unclean files; change nothing")
    action.add_argument("--execute", action="store_true", help="execute (quick mode by default), then clean")
    args = parser.parse_args(argv)

    failed = False
    for path in args.notebooks:
        if not path.is_file():
            print(f"{path}: no such notebook file", file=sys.stderr)
            failed = True
            continue
        if args.execute:
            print(f"{path}: executing in {os.environ.get('COURSE_MODE', 'quick')} mode...", flush=True)
            print(f"{path}: executed in {execute(path):.0f} s")
        notebook = read(path)
        cleaned = clean(read(path))
        if args.check:
            if cleaned != notebook:
                print(f"{path}: not clean (run: python tools/clean_notebooks.py {path})")
                failed = True
            report = problems(notebook)
        else:
            if cleaned != notebook:
                write(path, cleaned)
                print(f"{path}: cleaned")
            report = problems(cleaned)
        for problem in report:
            print(f"{path}: {problem}")
        failed = failed or bool(report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
