"""course_utils.experiments: the registry of experiments, and what describe() and `list` show of it."""

import json
import re
from pathlib import Path

from course_utils import cli, experiments
from course_utils.experiments import get_settings
from course_utils.history import History
from course_utils.records import slug
from course_utils.schedules import schedule_of


def test_lr_decay_pairs_constant_and_step_runs():
    settings = get_settings("lr-decay", "full")
    specs = experiments.run_specs("lr-decay", settings)
    assert [schedule_of(spec.settings(settings)) for spec in specs] == ["constant", "step"]
    assert [spec.changes for spec in specs] == [(("schedule", "constant"),), (("schedule", "step"),)]


def experiments_the_notebooks_name() -> set[str]:
    """Every experiment a notebook runs or reads the settings of, from the notebooks' code."""
    names = set()
    for path in Path(__file__).resolve().parent.parent.glob("notebooks/*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                names.update(re.findall(r'(?:run_experiment|get_settings)\("([a-z-]+)"', "".join(cell["source"])))
    return names


def test_every_experiment_a_notebook_runs_is_listed_and_runnable_from_the_command_line(tmp_path, monkeypatch,
                                                                                      capsys):
    named = experiments_the_notebooks_name()
    assert {"gradients", "block-defects", "save-load", "degradation", "depth"} <= named
    assert named <= set(experiments.EXPERIMENTS)
    assert cli.main(["list"]) == 0
    listed = capsys.readouterr().out
    assert all(f"\n{name}: " in listed for name in experiments.EXPERIMENTS)
    assert f"   full: {experiments.settings_lines('depth', ['full'])[0]}\n" in listed  # describe()'s line too
    monkeypatch.setenv("COURSE_MODE", "smoke")  # cli.main sets it; monkeypatch restores it after
    for name, only in (("gradients", "resnet-56"), ("save-load", "resnet18"), ("block-defects", "paper-blocks-3")):
        out = tmp_path / name
        assert cli.main(["run", name, "--mode", "smoke", "--out", str(out), "--only", only, "--no-progress",
                         "--set", "test_size=100"]) == 0
        assert History.load_json(out / f"{name}__{slug(only)}.json").config["experiment"] == name


def test_table_6_has_a_value_for_every_resnet_depth_the_depth_experiment_sets_beside_it():
    for mode in ("full", "paper"):
        depths = {int(name.split("-")[1]) for name in get_settings("depth", mode).models
                  if name.startswith("resnet-")}
        assert depths <= set(experiments.PAPER_TEST_ERROR), (mode, depths - set(experiments.PAPER_TEST_ERROR))
    errors = [experiments.PAPER_TEST_ERROR[depth] for depth in sorted(experiments.PAPER_TEST_ERROR)]
    assert errors == sorted(errors, reverse=True)  # the paper's claim: deeper ResNets, lower error


def test_only_runs_as_long_as_the_papers_sit_beside_table_6():
    history = History()
    history.config["train_images"] = 50_000
    history.step_loss = [1.0] * 5_865  # full mode's 15 epochs of batch 128
    assert not experiments.comparable_with_the_paper(history)
    history.step_loss = [1.0] * 64_000
    assert experiments.comparable_with_the_paper(history)
    history.config["train_images"] = 2_048  # as many steps on a subset: another experiment
    assert not experiments.comparable_with_the_paper(history)


def test_describe_prints_the_settings_line_that_list_prints(capsys):
    experiments.describe("depth", mode="full")
    described = capsys.readouterr().out
    line = experiments.settings_lines("depth", ["full"])[0]
    assert "mode: full (as given;" in described and f"depth: {line}\n" in described
    assert "[estimate on a T4: " in line  # and `list` prints the same lines: see the test above
