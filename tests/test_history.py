"""course_utils.history: the run record, its JSON file, and what it says about a run."""

import json
import math

import pytest

from course_utils.history import History


def test_a_record_round_trips_through_json_with_its_config_and_metrics(tmp_path):
    history = History(step_loss=[2.3, 2.2], step_lr=[0.1, 0.1], train_loss=[2.25], train_acc=[0.125],
                      val_loss=[math.nan], val_acc=[math.nan], epoch_seconds=[1.5], images_per_s=[85.3],
                      epoch_end_steps=[2], config={"note": "test", "model": {"name": "resnet18", "width": 4}},
                      meta={"device": "cpu", "mode": "smoke"})
    loaded = History.load_json(history.save_json(tmp_path / "records" / "run.json"))
    assert loaded == history and math.isnan(loaded.val_acc[0])  # no validation loader: NaN, read back as NaN
    assert loaded.metric("train_error") == [1 - 0.125]
    with pytest.raises(ValueError, match="unknown metric"):
        loaded.metric("accuracy")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json is not a readable run record"):
        History.load_json(tmp_path / "bad.json")

def test_final_loss_is_the_mean_of_the_last_steps():
    history = History(step_loss=[5.0, 4.0, 3.0, 2.0, 1.0])
    assert history.final_loss(last_steps=2) == 1.5
    assert history.final_loss(last_steps=10) == 3.0
    with pytest.raises(ValueError, match="no steps"):
        History().final_loss()

def test_run_records_are_strict_json_and_read_back_nan(tmp_path):
    history = History(step_loss=[2.3, 2.1], val_acc=[float("nan")], train_loss=[float("inf")])
    path = history.save_json(tmp_path / "run.json")
    strict = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"non-standard JSON: {name}"))
    assert strict["val_acc"] == ["NaN"] and strict["train_loss"] == ["Infinity"]
    back = History.load_json(path)
    assert math.isnan(back.val_acc[0]) and back.train_loss == [math.inf] and back.step_loss == [2.3, 2.1]

@pytest.mark.parametrize("content, message", [
    ('[1, 2]', "is a list"),
    ('{"format": "course_utils.History/1", "step_loss": "2.3"}', "'step_loss' should be a list of numbers, not a str"),
    ('{"format": "course_utils.History/1", "val_acc": [0.5, "high"]}', "it holds 'high'"),
    ('{"format": "course_utils.History/1", "config": [1]}', "'config' should be an object"),
])
def test_a_record_with_wrong_types_names_the_file(tmp_path, content, message):
    (tmp_path / "odd.json").write_text(content)
    with pytest.raises(ValueError, match=f"odd.json is not a readable run record: .*{message}"):
        History.load_json(tmp_path / "odd.json")

def test_startup_is_the_first_epochs_excess_and_can_be_left_out_of_the_time_to_an_accuracy():
    history = History()
    history.epoch_seconds = [41.0, 1.2, 1.0, 1.1]  # a compiled run: the first epoch compiles
    history.val_acc = [0.5, 0.8, 0.93, 0.95]
    assert history.startup_seconds() == pytest.approx(41.0 - 1.1)
    assert history.seconds_to_accuracy(0.94) == pytest.approx(44.3)
    assert history.seconds_to_accuracy(0.94, without_startup=True) == pytest.approx(44.3 - 39.9)
    history.epoch_seconds = [1.0, 1.3, 1.2, 1.2]  # eager: no excess, nothing subtracted
    assert history.startup_seconds() == 0.0
    history.epoch_seconds = [5.0]
    assert history.startup_seconds() == 0.0  # one epoch: nothing to compare it with

def test_a_record_keeps_the_fields_of_a_newer_version_and_refuses_ragged_columns(tmp_path, monkeypatch):
    record = History(step_loss=[2.3, 2.2], step_lr=[0.1, 0.1], train_loss=[2.25], train_acc=[0.1], val_loss=[2.3],
                     val_acc=[0.1], epoch_seconds=[1.0], images_per_s=[128.0], epoch_end_steps=[2]).to_dict()
    record["grad_norms"] = [0.5, 0.4]  # a field a later course_utils might add
    (tmp_path / "newer.json").write_text(json.dumps(record))
    monkeypatch.setenv("HOME", str(tmp_path))
    History.load_json("~/newer.json").save_json("~/again.json")  # ~ is the home folder, as in a shell
    assert json.loads((tmp_path / "again.json").read_text())["grad_norms"] == [0.5, 0.4]
    record["val_acc"] = [0.1, 0.2]
    (tmp_path / "ragged.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"per-epoch columns have different lengths \(.*val_acc 2"):
        History.load_json(tmp_path / "ragged.json")
    record["format"] = "course_utils.History/3"
    (tmp_path / "future.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="newer format"):
        History.load_json(tmp_path / "future.json")


def test_images_trained_counts_the_part_of_the_last_epoch_a_budget_stopped_run_trained():
    # A committed record stopped by its image budget during epoch 45: its images are the budget, not 45 epochs.
    from pathlib import Path
    record = Path(__file__).resolve().parent.parent / "data" / "results" / "laptop-hour" / "seed-0" / "laptop-hour__resnet9.json"
    history = History.load_json(record)
    assert history.meta["stop_reason"] == "image_limit"
    assert history.images_trained == pytest.approx(history.config["image_budget"], abs=history.config["batch_size"])
    assert History(images_per_s=[100.0, 50.0], epoch_seconds=[2.0, 1.0]).images_trained == 250.0
