"""Words agree with numbers (tools/check_words_and_numbers.py): the committed notebooks pass, and each
kind of drift in a small hand-made notebook is caught."""

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("check_words_and_numbers", REPO / "tools" / "check_words_and_numbers.py")
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def notebook(*cells: dict) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": list(cells)}


def markdown(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def code(source: str, *texts: str) -> dict:
    outputs = [{"output_type": "stream", "name": "stdout", "text": text} for text in texts]
    return {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": source, "outputs": outputs}


def describe_output(*args) -> str:
    import contextlib
    import io

    from course_utils import experiments

    printed = io.StringIO()
    with check.quick_mode_environment(), contextlib.redirect_stdout(printed):
        experiments.describe(*args)
    return printed.getvalue()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_committed_notebook_says_what_its_outputs_show(path):
    assert check.problems(check.read(path), path.stem) == []


def test_every_cited_figure_has_a_source_and_is_still_in_the_file_it_is_quoted_from():
    assert check.cited_problems(check.load_cited()) == []
    quoted = {"08_training_fast": [{"figure": "99.9%", "source": "benchmarks", "file": "benchmarks/README.md"}]}
    assert "is not in benchmarks/README.md any more" in check.cited_problems(quoted)[0]
    assert "has no source" in check.cited_problems({"00_setup": [{"figure": "1.5"}]})[0]


def test_a_stale_describe_output_is_caught_and_a_fresh_one_passes():
    fresh = describe_output("degradation")
    cell = 'experiments.describe("degradation")\ndevice = devices.pick_device()'
    assert check.describe_problems(notebook(code(cell, fresh + "Using cpu because ...\n"))) == []
    # the device line depends on the machine that executed the notebook: not compared
    elsewhere = "\n".join("device: cuda (NVIDIA H200), training precision bf16" if line.startswith("device:") else line
                          for line in fresh.splitlines()) + "\n"
    assert check.describe_problems(notebook(code(cell, elsewhere))) == []
    drifted = fresh.replace("epochs=3", "epochs=30")
    assert drifted != fresh
    found = check.describe_problems(notebook(code(cell, drifted)))
    assert len(found) == 1 and "stale" in found[0] and "epochs=30" in found[0]
    # describe([]) prints no experiment; a notebook that shows all of them for it is stale
    assert check.describe_problems(notebook(code("experiments.describe([])", describe_output([])))) == []
    assert check.describe_problems(notebook(code("experiments.describe([])", describe_output())))


def test_a_number_in_the_markdown_must_be_in_an_output_or_cited():
    run = code("print(result)", "test accuracy 61.07% after 1.00 minutes; 11,689,512 parameters\n")
    fine = notebook(markdown("It reached 61.07% in 1.00 minutes with 11689512 parameters."), run)
    assert check.number_problems(fine, "08_training_fast", {}) == []
    drifted = notebook(markdown("It reached 61.7% in 1.00 minutes (11,689,521 parameters)."), run)
    found = check.number_problems(drifted, "08_training_fast", {})
    assert [problem.split("'")[1] for problem in found] == ["61.7%", "11,689,521"]
    # 61.0 is not "in" 61.07, nor 1.0 in 11.07
    assert check.number_problems(notebook(markdown("about 61.0%"), run), "x", {})
    cited = {"08_training_fast": [{"figure": "61.7%", "source": "a paper"}],
             "*": [{"figure": "11,689,521", "source": "another"}]}
    assert check.number_problems(drifted, "08_training_fast", cited) == []
    assert len(check.number_problems(drifted, "05_training_resnet18", cited)) == 1  # cited for 08 only


def test_code_formulas_links_and_references_are_not_read_as_measurements():
    text = ("Set `lr=0.05` (He et al. 2016, Section 4.2, Table 6; PyTorch 2.6), $\\gamma = 0.1$, "
            "[the paper](https://arxiv.org/abs/1512.03385), a 3x3 conv in ResNet-56 v1.5.")
    assert check.markdown_numbers(text) == []
    assert check.markdown_numbers("from 68.9% to 83.4%, x4.5, 0.59 vs 0.43, 1,024 images") == \
        ["68.9%", "83.4%", "4.5", "0.59", "0.43", "1,024"]


def test_a_progress_bar_that_stops_short_needs_a_line_saying_why():
    bar = " 3%|▎         | 315/11730 [01:01<34:15,  5.55step/s]"
    silent = notebook(code("fit(...)", bar, "epoch 1/30: train loss 1.6866\n"))
    assert "stops at 315/11730" in check.bar_problems(silent)[0]
    explained = notebook(code("fit(...)", bar, "Stopped by the time limit of 60 s after 315 of 11,730 planned steps\n"))
    assert check.bar_problems(explained) == []
    finished = notebook(code("fit(...)", "100%|██████████| 96/96 [00:49<00:00,  2.07step/s]"))
    assert check.bar_problems(finished) == []


def test_the_command_line_fails_on_a_drifted_copy_of_a_committed_notebook(tmp_path, capsys):
    source = REPO / "notebooks" / "07_depth_comparison.ipynb"
    copy = tmp_path / source.name
    text = source.read_text(encoding="utf-8")
    assert check.main([str(source)]) == 0
    nb = json.loads(text)
    cell = next(c for c in nb["cells"] if c["cell_type"] == "markdown" and "8.75%" in "".join(c["source"]))
    cell["source"] = "".join(cell["source"]).replace("8.75%", "8.57%")  # a typo in a cited figure
    copy.write_text(json.dumps(nb), encoding="utf-8")
    capsys.readouterr()
    assert check.main([str(copy)]) == 1
    assert "'8.57%'" in capsys.readouterr().out
