"""course_utils.runner: training an experiment's runs and writing their records."""

import pytest
import torch

from course_utils import models, records, runner
from course_utils.checkpoint import load_checkpoint
from course_utils.experiments import get_settings
from course_utils.history import History
from course_utils.schedules import schedule_of


def test_run_experiment_writes_records_and_refuses_to_overwrite(tmp_path, monkeypatch, cifar):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    runs = runner.run_experiment("lr-decay", out_dir=tmp_path, data=cifar, progress=False)
    assert list(runs) == ["resnet18 constant LR", "resnet18 StepLR"]
    constant, step = runs.values()
    assert constant.step_loss[0] == step.step_loss[0]  # same initial weights and first batch
    assert constant.step_lr[-1] == 0.05 and step.step_lr[-1] == pytest.approx(0.005)
    loaded = records.load_runs(tmp_path, "lr-decay")
    assert sorted(loaded) == sorted(runs)
    record = History.load_json(tmp_path / "lr-decay__resnet18-steplr.json")
    assert record.meta["mode"] == "smoke" and record.config["experiment"] == "lr-decay"
    assert record.config["train_images"] == 128 and record.config["test_images"] == 100
    before = (tmp_path / "lr-decay__resnet18-steplr.json").read_text()
    with pytest.raises(FileExistsError, match="--overwrite"):
        runner.run_experiment("lr-decay", out_dir=tmp_path, data=cifar, progress=False)
    assert (tmp_path / "lr-decay__resnet18-steplr.json").read_text() == before


def test_save_models_writes_a_checkpoint_that_loads_into_a_fresh_model(tmp_path, monkeypatch, cifar):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    kept = {}
    runs = runner.run_experiment("depth", data=cifar, progress=False, only=["resnet-20"], out_dir=tmp_path,
                                      save_models=True, keep_models=kept)
    fresh = models.build("resnet-20")
    info = load_checkpoint(tmp_path / "depth__resnet-20.pt", fresh)
    assert info.history.step_loss == runs["resnet-20"].step_loss and info.epoch == 1
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), kept["resnet-20"].state_dict().values()))
    with pytest.raises(FileExistsError, match="depth__resnet-20"):
        runner.run_experiment("depth", data=cifar, progress=False, only=["resnet-20"], out_dir=tmp_path,
                                   save_models=True)
    with pytest.raises(ValueError, match="needs an out_dir"):
        runner.run_experiment("depth", data=cifar, progress=False, only=["resnet-20"], save_models=True)


def test_keep_models_returns_the_trained_networks(monkeypatch, cifar):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    kept = {}
    runs = runner.run_experiment("depth", data=cifar, progress=False, only=["resnet-20"], keep_models=kept)
    assert list(kept) == list(runs) == ["resnet-20"]
    assert kept["resnet-20"].arch["depth"] == 20


class InterruptingLoader:
    """The wrapped loader, with Ctrl-C pressed during its second batch."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for index, batch in enumerate(self.loader):
            if index == 1:
                raise KeyboardInterrupt
            yield batch


def interrupt_second_run(monkeypatch):
    real_fit, calls = runner.fit, []

    def fit(model, loader, **kwargs):
        calls.append(model)
        return real_fit(model, InterruptingLoader(loader) if len(calls) == 2 else loader, **kwargs)

    monkeypatch.setattr(runner, "fit", fit)


def test_ctrl_c_stops_the_whole_experiment_and_keeps_the_complete_records(tmp_path, monkeypatch, cifar, capsys):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    interrupt_second_run(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment("lr-decay", out_dir=tmp_path, data=cifar, progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lr-decay__resnet18-constant-lr.json"]
    assert "Interrupted during resnet18 StepLR" in capsys.readouterr().out


def test_an_output_folder_that_is_a_file_is_refused_before_training(tmp_path, monkeypatch, cifar):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    (tmp_path / "records").write_text("not a folder")
    with pytest.raises(ValueError, match="is a file; choose a folder"):
        runner.run_experiment("lr-decay", out_dir=tmp_path / "records", data=cifar, progress=False)


def test_a_second_run_into_the_same_folder_stops_before_training_while_the_first_writes(tmp_path, monkeypatch,
                                                                                     cifar):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    lock = tmp_path / ".degradation__plain-20.json.lock"  # what a run under way holds
    lock.write_text("12345\n")
    with pytest.raises(FileExistsError, match="another run is writing .*degradation__plain-20.json"):
        runner.run_experiment("degradation", data=cifar, out_dir=tmp_path, only=["plain-20"], progress=False)
    assert not list(tmp_path.glob("*.json"))
    lock.unlink()
    runner.run_experiment("degradation", data=cifar, out_dir=tmp_path, only=["plain-20"], progress=False)
    assert (tmp_path / "degradation__plain-20.json").exists() and not list(tmp_path.glob(".*.lock"))
    assert not list(tmp_path.glob(".*.tmp"))  # the record's temporary file was its own, and is gone


def test_a_folder_never_mixes_runs_of_other_seeds_or_settings_unannounced(tmp_path, cifar):
    def run(label, **arguments):
        return runner.run_experiment("lr-decay", out_dir=tmp_path, data=cifar, progress=False, mode="smoke",
                                          only=[label], **arguments)

    run("resnet18 constant LR", seed=0)
    with pytest.raises(ValueError, match=r"holds lr-decay__resnet18-constant-lr.json, another run of lr-decay with "
                                         r"other settings \(seed 0 there, 1 here\)"):
        run("resnet18 StepLR", seed=1)
    with pytest.raises(ValueError, match=r"settings \{\} there, \{'epochs': 1\} here"):
        run("resnet18 StepLR", seed=0, overrides={"epochs": 1})
    run("resnet18 StepLR", seed=0, overrides={"channels_last": True})  # a speed switch: still comparable
    assert sorted(records.load_runs(tmp_path, "lr-decay")) == ["resnet18 StepLR", "resnet18 constant LR"]
    with pytest.raises(ValueError, match="seed 0 there, 2 here"):  # --overwrite --only after another seed
        run("resnet18 StepLR", seed=2, overwrite=True)


def test_a_schedule_set_for_an_experiment_whose_runs_choose_their_own_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"schedule='one-cycle' does not apply to lr-decay: its runs set their own "
                                         r"schedules \(resnet18 constant LR: constant, resnet18 StepLR: step\)"):
        runner.run_experiment("lr-decay", mode="smoke", overrides={"schedule": "one-cycle"}, out_dir=tmp_path)
    with pytest.raises(ValueError, match="does not apply to fast-ablation"):
        runner.planned_runs("fast-ablation", "smoke", {"schedule": "constant"})
    specs = runner.planned_runs("degradation", "smoke", {"schedule": "one-cycle"})  # one schedule for all: applies
    settings = runner.apply_overrides(get_settings("degradation", "smoke"), {"schedule": "one-cycle"})
    assert {schedule_of(spec.settings(settings)) for spec in specs} == {"one-cycle"}
    assert not list(tmp_path.iterdir())
