"""Time estimates: full mode sized for a T4 by the stated assumption, the assumption tied to the GPU
measurement, and the time budget that picks the same number of epochs for every run."""

import json
import statistics
from pathlib import Path

import pytest
from torch import nn

from course_utils import estimates, experiments, models, runner
from course_utils.history import History

# The experiments each notebook runs in full mode (notebook 08's laptop cell runs for 60 s).
def t4_minutes(experiment: str, mode: str) -> float:
    settings = experiments.get_settings(experiment, mode)
    return estimates.t4_seconds(experiments.run_specs(experiment, settings), settings) / 60


NOTEBOOK_EXPERIMENTS = {"01": ("gradients", "degradation"), "02": ("block-defects",), "05": ("lr-decay",),
                        "06": ("save-load",), "07": ("depth",), "08": ("fast-ablation",)}
SPEED_RECORD = Path(__file__).resolve().parent.parent / "data" / "results" / "gpu-check" / "speed.json"


@pytest.mark.parametrize("notebook", sorted(NOTEBOOK_EXPERIMENTS))
def test_each_notebook_fits_half_an_hour_on_a_t4_in_full_mode(notebook):
    minutes = sum(t4_minutes(name, "full") for name in NOTEBOOK_EXPERIMENTS[notebook])
    assert 0 < minutes <= 30, f"notebook {notebook}: {minutes:.1f} min estimated on a T4"


def test_paper_mode_is_estimated_at_hours_on_a_t4():
    assert t4_minutes("depth", "paper") > 3 * 60


def test_the_per_layer_cost_assumed_for_a_t4_is_at_least_what_the_h200_measured():
    # The fixed cost per layer and step cannot be smaller on a T4 host than on the H200's.
    record = json.loads(SPEED_RECORD.read_text())
    per_layer = []
    for row in record["rows"]:
        if row["part"] != "2":
            continue
        model = models.build(row["model"], row["width"])
        layers = sum(isinstance(module, (nn.Conv2d, nn.Linear)) for module in model.modules())
        per_layer.append(row["batch"] / row["images_per_s"] / layers)
    assert len(per_layer) >= 10 and "H200" in record["meta"]["device"]
    assert estimates.T4_SECONDS_PER_LAYER >= statistics.median(per_layer)


def test_t4_step_grows_with_the_batch_and_the_model():
    small, deep = models.build("resnet-20"), models.build("resnet-56")
    assert estimates.t4_step_seconds(small, 128) < estimates.t4_step_seconds(small, 512)
    assert estimates.t4_step_seconds(small, 128) < estimates.t4_step_seconds(deep, 128)


def test_a_budget_gives_every_run_the_same_epochs_within_the_modes():
    per_epoch = {"plain-20": 10.0, "plain-56": 30.0}
    assert estimates.epochs_for_budget(10, per_epoch, most=164) == 15  # 600 s / 40 s
    assert estimates.epochs_for_budget(1000, per_epoch, most=30) == 30  # never more than the mode's
    assert estimates.epochs_for_budget(0.1, per_epoch, most=30) == 1  # at least one
    with pytest.raises(ValueError, match="positive number of minutes"):
        estimates.epochs_for_budget(0, per_epoch, most=30)


def test_course_time_budget_must_be_minutes(monkeypatch):
    monkeypatch.setenv("COURSE_TIME_BUDGET", "twenty")
    with pytest.raises(ValueError, match="COURSE_TIME_BUDGET='twenty' is not a number of minutes"):
        estimates.time_budget_minutes()
    monkeypatch.setenv("COURSE_TIME_BUDGET", "20")
    assert estimates.time_budget_minutes() == 20 and estimates.time_budget_minutes(5) == 5


def test_run_experiment_prints_the_estimate_and_records_the_budgets_choice(tmp_path, monkeypatch, cifar, capsys):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    monkeypatch.setenv("COURSE_TIME_BUDGET", "0.0001")  # far too short: one epoch each, said so
    runs = runner.run_experiment("lr-decay", out_dir=tmp_path, data=cifar, progress=False)
    out = capsys.readouterr().out
    assert "expected on cpu (a few timed steps per run): resnet18 constant LR" in out
    assert "time budget: 1 epoch(s) of every run fit the 0.0001-minute budget" in out
    assert [history.epochs_done for history in runs.values()] == [1, 1]  # smoke mode has 2
    record = History.load_json(tmp_path / "lr-decay__resnet18-steplr.json")
    assert record.config["time_budget_choice"]["epochs"] == 1
    assert record.config["time_budget_choice"]["mode_epochs"] == 2
    # The budget's estimate is the sum of the runs' recorded per-epoch estimates (one epoch each).
    per_epoch = [history.config["estimated_epoch_seconds"] for history in runs.values()]
    assert record.config["time_budget_choice"]["estimated_minutes"] == pytest.approx(sum(per_epoch) / 60, abs=0.01)
