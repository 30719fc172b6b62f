"""The way through the course: maps, links, recaps, formulas, and exercises whose solutions work."""

import ast
import builtins
import copy
import importlib
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import check_links  # noqa: E402
import course_map  # noqa: E402
import run_solutions  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FENCED_PYTHON = run_solutions.FENCED_PYTHON  # a solution's code: its fenced python blocks


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def markdown(notebook: dict) -> str:
    return "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")


def test_every_notebook_opens_with_its_map_and_ends_with_the_next_one():
    assert course_map.main(["--check"]) == 0
    for index, path in enumerate(NOTEBOOKS):
        notebook = read(path)
        first, last = "".join(notebook["cells"][0]["source"]), "".join(notebook["cells"][-1]["source"])
        assert first.startswith("[Contents](../README.md#notebooks)"), path.name
        if index > 0:
            assert f"]({NOTEBOOKS[index - 1].name})" in first.split("\n")[0], path.name
        if index + 1 < len(NOTEBOOKS):
            assert f"]({NOTEBOOKS[index + 1].name})" in last, path.name


def test_a_renamed_notebook_makes_the_maps_stale():
    notebooks = [read(path) for path in NOTEBOOKS]
    titles = [course_map.title(notebook) for notebook in notebooks]
    titles[3] = "03 · A new title"
    rewritten = course_map.with_map(notebooks[2], course_map.map_line(NOTEBOOKS, titles, 2),
                                    course_map.last_line(NOTEBOOKS, titles, 2))
    assert rewritten != notebooks[2] and "A new title" in "".join(rewritten["cells"][-1]["source"])
    again = course_map.with_map(copy.deepcopy(rewritten), course_map.map_line(NOTEBOOKS, titles, 2),
                                course_map.last_line(NOTEBOOKS, titles, 2))
    assert again == rewritten  # written twice, the same notebook


def test_every_relative_link_of_the_course_leads_somewhere():
    assert check_links.main([]) == 0


def test_a_link_to_a_missing_file_or_heading_is_reported(tmp_path):
    (tmp_path / "README.md").write_text("# Title\n\n## Lessons over seeds\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[ok](README.md#lessons-over-seeds) [gone](missing.md) [no anchor](README.md#lessons)\n"
                    "`[in code](nowhere.md)` [web](https://arxiv.org/abs/1512.03385)\n", encoding="utf-8")
    original = check_links.ROOT
    check_links.ROOT = tmp_path
    try:
        problems = check_links.broken_links(page)
    finally:
        check_links.ROOT = original
    assert len(problems) == 2, problems
    assert "no file 'missing.md'" in problems[0] and "no heading with the anchor #lessons" in problems[1]


def test_every_notebook_recaps_before_its_exercises():
    for path in NOTEBOOKS:
        text = markdown(read(path))
        assert "## What you saw" in text and text.index("## What you saw") < text.index("## Exercises"), path.name


def exercise_numbers(notebook: dict) -> tuple[set[int], set[int], set[int]]:
    """The numbers of a notebook's exercises, of those the sentence under them says have a cell
    ("Each exercise has a cell to work in" or "Exercises 1 and 2 have a cell"), and of its exercise cells."""
    cells = notebook["cells"]
    start = next(i for i, c in enumerate(cells) if "## Exercises" in "".join(c["source"]))
    text = "".join(cells[start]["source"]).split("## Exercises", 1)[1]
    listed = {int(n) for n in re.findall(r"^(\d+)\. ", text, re.M)}
    said = re.search(r"^(Each exercise has|Exercises? ([\d, and]+) ha(?:s|ve)) a cell to work in", text, re.M)
    promised = listed if said and said.group(1).startswith("Each") else \
        {int(n) for n in re.findall(r"\d+", said.group(2))} if said else set()
    worked = {int(c["id"].split("-")[1]) for c in cells[start:]
              if c["cell_type"] == "code" and re.fullmatch(r"exercise-\d+", c.get("id", ""))
              and "exercise" in c["metadata"].get("tags", [])}
    return listed, promised, worked


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_every_exercise_the_text_gives_a_cell_has_one_and_every_exercise_a_solution(path):
    notebook = read(path)
    listed, promised, worked = exercise_numbers(notebook)
    assert 2 <= len(listed) <= 4 and listed == set(range(1, len(listed) + 1)), f"{path.name}: exercises {listed}"
    assert promised, f"{path.name}: the sentence under the exercises does not say which have a cell to work in"
    assert worked == promised, f"{path.name}: the text gives a cell to exercise(s) {sorted(promised)}, " \
                               f"the notebook has exercise cells (id exercise-N, tag exercise) {sorted(worked)}"
    solved = {int(c["id"].split("-")[1]) for c in notebook["cells"] if re.fullmatch(r"solution-\d+", c.get("id", ""))}
    assert solved == listed, f"{path.name}: exercises {sorted(listed)}, solutions {sorted(solved)}"


def test_a_missing_exercise_cell_is_noticed():
    notebook = read(next(p for p in NOTEBOOKS if p.name.startswith("03")))
    notebook["cells"] = [c for c in notebook["cells"] if c.get("id") != "exercise-3"]
    listed, promised, worked = exercise_numbers(notebook)
    assert promised == listed == {1, 2, 3} and worked == {1, 2}


FORMULAS = {  # notebook -> what must be in its markdown, as LaTeX (issue: "the ideas as formulas")
    "01": [r"I + \frac{\partial \mathcal{F}_l}{\partial x_l}"],
    "02": [r"y = \mathcal{F}(x, \{W_i\}) + x", r"\mathrm{BN}(x)_c"],
    "03": [r"y = \mathcal{F}(x, \{W_i\}) + W_s\, x"],
    "04": [r"k^2 C_\text{in} C_\text{out}", "= 17C^2"],
    "05": [r"\ell = -\log p_y", r"\eta_e = \eta_0 \, \gamma^{\lfloor e / s \rfloor}"],
    "06": [r"\hat\mu \leftarrow (1 - m)\,\hat\mu + m\,\mu_B"],
    "08": [r"\eta(u) = \eta_\text{max}", r"q_k = (1 - \varepsilon)\,[k = y] + \frac{\varepsilon}{K}"],
}


@pytest.mark.parametrize("number", sorted(FORMULAS))
def test_the_ideas_are_written_as_formulas(number):
    text = markdown(read(next(p for p in NOTEBOOKS if p.name.startswith(number))))
    for formula in FORMULAS[number]:
        assert formula in text, f"notebook {number} lost the formula {formula!r}"
    assert text.count("$$") % 2 == 0, "an unclosed $$ block"


def defined_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_every_solution_is_code_that_parses_and_uses_only_names_the_notebook_has(path):
    # The solutions are markdown, so nbval never runs them: this is what keeps them from going stale.
    notebook = read(path)
    code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    notebook_tree = ast.parse(code.replace("%matplotlib inline", ""))
    known = defined_names(notebook_tree) | set(dir(builtins))
    # The course_utils modules the notebook imports by name (in 03, `article` is a block, not the module).
    modules = {alias.asname or alias.name: alias.name for node in ast.walk(notebook_tree)
               if isinstance(node, ast.ImportFrom) and node.module == "course_utils" for alias in node.names}
    solutions = [c for c in notebook["cells"] if "solution" in c["metadata"].get("tags", [])]
    assert len(solutions) >= 2, "2-4 exercises, each with its solution"
    for cell in solutions:
        for block in FENCED_PYTHON.findall("".join(cell["source"])):
            tree = ast.parse(block)
            known |= defined_names(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                    assert node.id in known, f"{path.name}: a solution uses {node.id!r}, which nothing defines"
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
                    module = importlib.import_module(f"course_utils.{modules[node.value.id]}")
                    assert hasattr(module, node.attr), f"{path.name}: a solution calls {node.value.id}.{node.attr}"


def test_the_solutions_of_a_notebook_run_after_it_and_a_failing_one_is_named(tmp_path):
    assert run_solutions.failures(NOTEBOOKS[0]) == []  # 00, the quickest: its three solutions run
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": "setup", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "answer = 42"},
        {"cell_type": "markdown", "id": "solution-1", "metadata": {"tags": ["solution"]},
         "source": "<details>\n<summary>Solution 1</summary>\n\n```python\nprint(answer)\n```\n\n</details>"},
        {"cell_type": "markdown", "id": "solution-2", "metadata": {"tags": ["solution"]},
         "source": "<details>\n<summary>Solution 2</summary>\n\n```python\nprint(answr)\n```\n\n</details>"},
    ]}
    path = tmp_path / "broken.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    found = run_solutions.failures(path)
    assert len(found) == 1 and "solution solution-2: NameError" in found[0], found
    assert json.loads(path.read_text(encoding="utf-8")) == notebook  # the file is left as it was
