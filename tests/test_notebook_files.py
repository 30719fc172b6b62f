"""The committed notebook files: clean (tools/clean_notebooks.py --check), and the cleaner itself."""

import copy
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("clean_notebooks", REPO / "tools" / "clean_notebooks.py")
clean_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(clean_notebooks)

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_every_committed_notebook_is_clean(capsys):
    assert NOTEBOOKS
    code = clean_notebooks.main(["--check", *map(str, NOTEBOOKS)])
    assert code == 0, capsys.readouterr().out


def bar_state(value: float) -> dict:
    """The saved widget state of one tqdm bar (an HBox of HTML, progress, HTML) at ``value`` of 96."""
    def model(name, **state):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}

    return {
        "box": model("HBoxModel", children=["IPY_MODEL_left", "IPY_MODEL_bar", "IPY_MODEL_right"]),
        "left": model("HTMLModel", value=f"{value / 96:.0%}"),
        "bar": model("FloatProgressModel", max=96.0, value=value),
        "right": model("HTMLModel", value="\u200796/96\u2007[00:49&lt;00:00,\u2007\u20072.07step/s]"),
        "vbox": model("VBoxModel", children=["IPY_MODEL_box"]),
    }


def make_notebook(bar_value: float = 96.0) -> dict:
    view = {"version_major": 2, "version_minor": 0}
    outputs = [
        {"output_type": "display_data", "metadata": {},
         "data": {"application/vnd.jupyter.widget-view+json": {**view, "model_id": "box"},
                  "text/plain": "  0%|          | 0/96 [00:00<?, ?step/s]"}},
        {"output_type": "stream", "name": "stdout", "text": "epoch 6/6: train loss 1.5660\n"},
    ]
    return {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {
            "version_major": 2, "version_minor": 0, "state": bar_state(bar_value)}}},
        "cells": [{"cell_type": "code", "execution_count": 1, "source": "fit(...)", "outputs": outputs,
                   "metadata": {"execution": {"iopub.status.idle": "2026-11-28T01:37:06.858309Z"}, "tags": []}}],
    }


def test_cleaning_removes_timestamps_and_shows_each_bar_in_its_final_state():
    notebook = make_notebook()
    found = clean_notebooks.problems(notebook)
    assert any("volatile metadata ['execution']" in p for p in found)
    assert any("progress bar's stored text '  0%|" in p for p in found)

    cleaned = clean_notebooks.clean(copy.deepcopy(notebook))
    assert cleaned["cells"][0]["metadata"] == {"tags": []}
    bar = cleaned["cells"][0]["outputs"][0]["data"]["text/plain"]
    assert bar == "100%|██████████| 96/96 [00:49<00:00,  2.07step/s]"
    assert clean_notebooks.problems(cleaned) == []
    assert clean_notebooks.clean(copy.deepcopy(cleaned)) == cleaned  # cleaning twice changes nothing

    half = clean_notebooks.clean(make_notebook(bar_value=48.0))  # a bar stopped early (Ctrl-C, time limit)
    assert half["cells"][0]["outputs"][0]["data"]["text/plain"].startswith("50%|█████     |")


def test_a_solution_must_be_a_folded_details_block_of_markdown():
    # A collapsed code cell runs with Run All and prints its answer in every export; a <details>
    # block of markdown stays folded in every view.
    folded = "<details>\n<summary>Solution 1</summary>\n\n```python\nanswer()\n```\n\nIt is 7.\n\n</details>"
    leaking = [
        {"cell_type": "code", "execution_count": 2, "source": "answer()", "outputs": [],
         "metadata": {"tags": ["solution"], "jupyter": {"source_hidden": True, "outputs_hidden": True}}},
        {"cell_type": "markdown", "source": "**Solution.** It is 7.", "metadata": {"tags": ["solution"]}},
        {"cell_type": "markdown", "source": folded + "\n\nSeven, by the way.", "metadata": {"tags": ["solution"]}},
    ]
    for cell in leaking:
        notebook = make_notebook()
        notebook["cells"].append(cell)
        assert any("solution that Run All or an export would show" in p for p in clean_notebooks.problems(notebook))
    notebook = make_notebook()
    notebook["cells"].append({"cell_type": "markdown", "source": folded, "metadata": {"tags": ["solution"]}})
    assert clean_notebooks.problems(clean_notebooks.clean(notebook)) == []


def test_check_reports_machine_paths_widgets_without_a_picture_and_unexecuted_cells():
    notebook = clean_notebooks.clean(make_notebook())
    outputs = notebook["cells"][0]["outputs"]
    outputs.append({"output_type": "stream", "name": "stdout", "text": "saved to /home/ada/course/data/x.pt\n"})
    outputs.append({"output_type": "display_data", "metadata": {},
                    "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "vbox"},
                             "text/plain": "VBox(children=(HBox(children=(SelectMultiple(..."}})
    notebook["cells"].append({"cell_type": "code", "execution_count": None, "source": "x = 1", "outputs": [],
                              "metadata": {}})
    found = "\n".join(clean_notebooks.problems(notebook))
    assert "machine path ('/home/a')" in found
    assert "shows only its repr ('VBox(children=" in found
    assert "execution counts missing or out of order" in found

    outputs[-1]["data"]["image/png"] = "iVBORw0KGgo="  # with a picture for readers without a kernel: fine
    notebook["cells"].pop()
    outputs.pop(-2)
    assert clean_notebooks.problems(notebook) == []


def test_check_mode_changes_nothing_and_fails_on_an_unclean_file(tmp_path, capsys):
    path = tmp_path / "unclean.ipynb"
    clean_notebooks.write(path, make_notebook())
    before = path.read_bytes()
    assert clean_notebooks.main(["--check", str(path)]) == 1
    assert "not clean" in capsys.readouterr().out and path.read_bytes() == before
    assert clean_notebooks.main([str(path)]) == 0  # cleans in place
    assert clean_notebooks.main(["--check", str(path)]) == 0
    assert clean_notebooks.main(["--check", str(tmp_path / "missing.ipynb")]) == 1


def test_figures_fit_the_width_of_a_notebook():
    # A figure wider than the notebook column (about 11 inches at 1366x800) is scaled down until its
    # tick labels are unreadable; wide comparisons go in a grid instead.
    import json
    import re

    wide = []
    for path in [*NOTEBOOKS, *sorted((REPO / "course_utils").glob("*.py"))]:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".ipynb":
            text = "\n".join("".join(cell["source"]) for cell in json.loads(text)["cells"] if cell["cell_type"] == "code")
        wide += [f"{path.name}: {match.group(0)}" for match in re.finditer(r"figsize=\(([\d.]+),", text)
                 if float(match.group(1)) > 11]
    assert not wide, wide
