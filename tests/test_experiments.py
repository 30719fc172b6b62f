"""course_utils.experiments and the python -m course_utils command line."""

import json
import re
from pathlib import Path

import pytest
import torch

from course_utils import cli, experiments
from course_utils.checkpoint import load_checkpoint
from course_utils.experiments import get_settings
from course_utils.history import History


def test_named_models():
    assert experiments.build_named_model("plain-56").arch == {"name": "plain_net", "depth": 56, "num_classes": 10}
    assert experiments.build_named_model("resnet-20").arch["name"] == "cifar_resnet"
    assert experiments.build_named_model("resnet34", width=8).arch["width"] == 8
    with pytest.raises(ValueError, match="unknown model name"):
        experiments.build_named_model("vgg-16")


def test_lr_decay_pairs_constant_and_step_runs():
    specs = experiments.run_specs("lr-decay", get_settings("lr-decay", "full"))
    assert [s.schedule for s in specs] == ["constant", "step"]


def test_schedules_scale_the_articles_step_and_the_papers_milestones():
    import torch

    settings = get_settings("lr-decay", "paper")  # 30 epochs, the article's step of 10
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = experiments.make_scheduler(optimizer, settings, "step")
    assert scheduler.step_size == 10
    assert experiments.make_scheduler(optimizer, get_settings("lr-decay", "full"), "step").step_size == 8  # of 24
    paper = experiments.make_scheduler(optimizer, get_settings("depth", "paper"), "multistep")
    assert sorted(paper.milestones) == [82, 123]  # 50% and 75% of 164 epochs
    assert experiments.make_scheduler(optimizer, settings, "constant") is None


def test_run_experiment_writes_records_and_refuses_to_overwrite(tmp_path, monkeypatch, cifar):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    runs = experiments.run_experiment("lr-decay", out_dir=tmp_path, data=cifar, progress=False)
    assert list(runs) == ["resnet18 constant LR", "resnet18 StepLR"]
    constant, step = runs.values()
    assert constant.step_loss[0] == step.step_loss[0]  # same initial weights and first batch
    assert constant.step_lr[-1] == 0.05 and step.step_lr[-1] == pytest.approx(0.005)
    loaded = experiments.load_runs(tmp_path, "lr-decay")
    assert sorted(loaded) == sorted(runs)
    record = History.load_json(tmp_path / "lr-decay__resnet18-steplr.json")
    assert record.meta["mode"] == "smoke" and record.config["experiment"] == "lr-decay"
    assert record.config["train_images"] == 128 and record.config["test_images"] == 100
    before = (tmp_path / "lr-decay__resnet18-steplr.json").read_text()
    with pytest.raises(FileExistsError, match="--overwrite"):
        experiments.run_experiment("lr-decay", out_dir=tmp_path, data=cifar, progress=False)
    assert (tmp_path / "lr-decay__resnet18-steplr.json").read_text() == before


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
    monkeypatch.setenv("COURSE_MODE", "smoke")  # cli.main sets it; monkeypatch restores it after
    for name, only in (("gradients", "resnet-56"), ("save-load", "resnet18"), ("block-defects", "paper-blocks-3")):
        out = tmp_path / name
        assert cli.main(["run", name, "--mode", "smoke", "--out", str(out), "--only", only, "--no-progress",
                         "--set", "test_size=100"]) == 0
        assert History.load_json(out / f"{name}__{experiments.slug(only)}.json").config["experiment"] == name


def test_cli_refuses_an_unknown_experiment(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["run", "nope"])
    assert exited.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_cli_runs_an_experiment(tmp_path, monkeypatch, capsys):
    # In this process (a subprocess costs seconds of imports; the Ctrl-C test below runs the real
    # `python -m course_utils`). cli.main sets COURSE_MODE from --mode: monkeypatch restores it after.
    monkeypatch.setenv("COURSE_MODE", "quick")
    run = ["run", "degradation", "--mode", "smoke", "--only", "plain-20", "--no-progress"]
    assert cli.main([*run, "--out", str(tmp_path)]) == 0
    record = History.load_json(tmp_path / "degradation__plain-20.json")
    assert record.config["command"].startswith("python -m course_utils run degradation --mode smoke")
    assert record.epochs_done == 1 and record.meta["mode"] == "smoke"

    assert cli.main([*run, "--out", str(tmp_path / "set"), "--set", "epochs=2", "train_size=64"]) == 0
    record = History.load_json(tmp_path / "set" / "degradation__plain-20.json")
    assert record.epochs_done == 2 and record.config["train_images"] == 64
    assert record.config["overrides"] == {"epochs": 2, "train_size": 64}
    capsys.readouterr()
    assert cli.main([*run, "--out", str(tmp_path / "wrong"), "--set", "epoch=2"]) == 2
    assert "unknown setting 'epoch'" in capsys.readouterr().err
    assert not (tmp_path / "wrong").exists()


def test_save_models_writes_a_checkpoint_that_loads_into_a_fresh_model(tmp_path, monkeypatch, cifar):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    kept = {}
    runs = experiments.run_experiment("depth", data=cifar, progress=False, only=["resnet-20"], out_dir=tmp_path,
                                      save_models=True, keep_models=kept)
    fresh = experiments.build_named_model("resnet-20")
    info = load_checkpoint(tmp_path / "depth__resnet-20.pt", fresh)
    assert info.history.step_loss == runs["resnet-20"].step_loss and info.epoch == 1
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), kept["resnet-20"].state_dict().values()))
    with pytest.raises(FileExistsError, match="depth__resnet-20"):
        experiments.run_experiment("depth", data=cifar, progress=False, only=["resnet-20"], out_dir=tmp_path,
                                   save_models=True)
    with pytest.raises(ValueError, match="needs an out_dir"):
        experiments.run_experiment("depth", data=cifar, progress=False, only=["resnet-20"], save_models=True)


def test_overrides_are_read_as_python_literals_or_strings():
    assert cli.parse_overrides(["epochs=4", "train_size=None", "schedule=one-cycle", "lr_milestones=(0.75,)"]) \
        == {"epochs": 4, "train_size": None, "schedule": "one-cycle", "lr_milestones": (0.75,)}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        cli.parse_overrides(["epochs"])


def test_keep_models_returns_the_trained_networks(monkeypatch, cifar):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    kept = {}
    runs = experiments.run_experiment("depth", data=cifar, progress=False, only=["resnet-20"], keep_models=kept)
    assert list(kept) == list(runs) == ["resnet-20"]
    assert kept["resnet-20"].arch["depth"] == 20


def test_table_6_has_a_value_for_every_resnet_depth_the_depth_experiment_sets_beside_it():
    for mode in ("full", "paper"):
        depths = {int(name.split("-")[1]) for name in get_settings("depth", mode).models
                  if name.startswith("resnet-")}
        assert depths <= set(experiments.PAPER_TEST_ERROR), (mode, depths - set(experiments.PAPER_TEST_ERROR))
    errors = [experiments.PAPER_TEST_ERROR[depth] for depth in sorted(experiments.PAPER_TEST_ERROR)]
    assert errors == sorted(errors, reverse=True)  # the paper's claim: deeper ResNets, lower error


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
    real_fit, calls = experiments.fit, []

    def fit(model, loader, **kwargs):
        calls.append(model)
        return real_fit(model, InterruptingLoader(loader) if len(calls) == 2 else loader, **kwargs)

    monkeypatch.setattr(experiments, "fit", fit)


def test_ctrl_c_stops_the_whole_experiment_and_keeps_the_complete_records(tmp_path, monkeypatch, cifar, capsys):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    interrupt_second_run(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        experiments.run_experiment("lr-decay", out_dir=tmp_path, data=cifar, progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lr-decay__resnet18-constant-lr.json"]
    assert "Interrupted during resnet18 StepLR" in capsys.readouterr().out


def test_the_command_line_exits_130_on_ctrl_c_and_2_on_a_bad_mode(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    interrupt_second_run(monkeypatch)
    assert cli.main(["run", "lr-decay", "--out", str(tmp_path / "runs"), "--no-progress"]) == 130
    assert len(list((tmp_path / "runs").glob("*.json"))) == 1
    monkeypatch.setenv("COURSE_MODE", "bogus")
    assert cli.main(["run", "lr-decay", "--out", str(tmp_path / "other")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: COURSE_MODE='bogus' is not a run mode") and error.count("\n") == 1


def test_an_output_folder_that_is_a_file_is_refused_before_training(tmp_path, monkeypatch, cifar):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    (tmp_path / "records").write_text("not a folder")
    with pytest.raises(ValueError, match="is a file; choose a folder"):
        experiments.run_experiment("lr-decay", out_dir=tmp_path / "records", data=cifar, progress=False)


def test_a_real_ctrl_c_stops_the_command_cleanly(tmp_path):
    # SIGINT sent to the process, as a terminal's Ctrl-C does, during a long first run.
    import os
    import signal
    import subprocess
    import sys

    environment = {**os.environ, "COURSE_MODE": "smoke", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "course_utils", "run", "lr-decay", "--set", "epochs=100000", "--out",
         str(tmp_path / "runs"), "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=environment,
        # A shell starts background jobs with SIGINT ignored, and a child inherits that: Python then
        # never turns Ctrl-C into KeyboardInterrupt. Give the command a terminal's default handling.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for line in process.stdout:
            if line.startswith("epoch 1/"):  # training is under way, in the second epoch
                break
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=300)[0]  # sized for a slow, busy machine
    finally:
        process.kill()
    assert process.returncode == 130, output
    assert "Interrupted during resnet18 constant LR" in output and "Traceback" not in output
    assert not list((tmp_path / "runs").glob("*.json"))  # no record of an incomplete run


def test_resnet_names_choose_the_shortcut_option():
    from course_utils import models

    option_a, option_b = experiments.build_named_model("resnet-20"), experiments.build_named_model("resnet-20-B")
    assert option_b.arch["shortcut"] == "B" and option_a.arch["shortcut"] == "A"
    assert models.count_parameters(option_b) - models.count_parameters(option_a) == 2_752  # two projections + BN
    with pytest.raises(ValueError, match="resnet-D-B"):
        experiments.build_named_model("plain-20-B")  # a plain network has no shortcut to choose


def test_load_runs_keeps_every_record_when_experiments_share_a_run_label(tmp_path):
    # save-load, fast and depth all have a run called "resnet18": none may replace another.
    for experiment in ("save-load", "fast", "depth"):
        history = History()
        history.config.update(experiment=experiment, run="resnet18")
        history.save_json(tmp_path / f"{experiment}__resnet18.json")
    every = experiments.load_runs(tmp_path)
    assert sorted(every) == ["depth__resnet18", "fast__resnet18", "save-load__resnet18"]
    assert list(experiments.load_runs(tmp_path, "fast")) == ["resnet18"]

    copy = History()
    copy.config.update(experiment="fast", run="resnet18")
    copy.save_json(tmp_path / "fast__resnet18-copy.json")  # a second record of the same run
    with pytest.raises(ValueError, match="both records of the run 'resnet18'"):
        experiments.load_runs(tmp_path, "fast")


def test_a_second_run_into_the_same_folder_stops_before_training_while_the_first_writes(tmp_path, monkeypatch,
                                                                                     cifar):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    lock = tmp_path / ".degradation__plain-20.json.lock"  # what a run under way holds
    lock.write_text("12345\n")
    with pytest.raises(FileExistsError, match="another run is writing .*degradation__plain-20.json"):
        experiments.run_experiment("degradation", data=cifar, out_dir=tmp_path, only=["plain-20"], progress=False)
    assert not list(tmp_path.glob("*.json"))
    lock.unlink()
    experiments.run_experiment("degradation", data=cifar, out_dir=tmp_path, only=["plain-20"], progress=False)
    assert (tmp_path / "degradation__plain-20.json").exists() and not list(tmp_path.glob(".*.lock"))
    assert not list(tmp_path.glob(".*.tmp"))  # the record's temporary file was its own, and is gone


@pytest.mark.parametrize("arguments, message", [
    (["--seed", "2**70"], "not a whole number"), (["--seed", str(2**70)], "outside 0 to 2**32 - 1"),
    (["--seed", "-1"], "outside 0"), (["--budget", "inf"], "above 0"), (["--budget", "nan"], "above 0"),
    (["--budget", "-5"], "above 0"), (["--budget", "soon"], "not a number of minutes"),
])
def test_the_command_line_refuses_a_wrong_seed_or_budget_before_anything_runs(arguments, message, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["run", "degradation", *arguments])
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_a_second_set_or_only_adds_to_the_first_and_a_setting_given_twice_is_refused(tmp_path, monkeypatch,
                                                                                   capsys):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    out = tmp_path / "runs"
    assert cli.main(["run", "degradation", "--out", str(out), "--no-progress", "--only", "plain-20",
                     "--only", "resnet-20", "--set", "epochs=1", "--set", "test_size=100"]) == 0
    assert sorted(path.name for path in out.glob("*.json")) == ["degradation__plain-20.json",
                                                                "degradation__resnet-20.json"]
    record = History.load_json(out / "degradation__resnet-20.json")
    assert record.config["overrides"] == {"epochs": 1, "test_size": 100}
    capsys.readouterr()
    assert cli.main(["run", "degradation", "--out", str(tmp_path / "twice"), "--set", "epochs=1",
                     "--set", "epochs=2"]) == 2
    assert "epochs is set twice" in capsys.readouterr().err


def test_a_diverging_run_ends_the_command_with_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    code = cli.main(["run", "degradation", "--out", str(tmp_path), "--no-progress", "--only", "plain-20",
                     "--set", "lr=1e30"])
    error = capsys.readouterr().err
    assert code == 1 and error.startswith("error: ") and "Traceback" not in error, error


def test_a_tilde_in_out_is_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cli.main(["run", "degradation", "--out", "~/runs", "--no-progress", "--only", "plain-20"]) == 0
    assert (tmp_path / "runs" / "degradation__plain-20.json").exists() and not Path("~").exists()


def test_only_runs_as_long_as_the_papers_sit_beside_table_6():
    history = History()
    history.config["train_images"] = 50_000
    history.step_loss = [1.0] * 5_865  # full mode's 15 epochs of batch 128
    assert not experiments.comparable_with_the_paper(history)
    history.step_loss = [1.0] * 64_000
    assert experiments.comparable_with_the_paper(history)
    history.config["train_images"] = 2_048  # as many steps on a subset: another experiment
    assert not experiments.comparable_with_the_paper(history)


def test_a_folder_never_mixes_runs_of_other_seeds_or_settings_unannounced(tmp_path, cifar):
    def run(label, **arguments):
        return experiments.run_experiment("lr-decay", out_dir=tmp_path, data=cifar, progress=False, mode="smoke",
                                          only=[label], **arguments)

    run("resnet18 constant LR", seed=0)
    with pytest.raises(ValueError, match=r"holds lr-decay__resnet18-constant-lr.json, another run of lr-decay with "
                                         r"other settings \(seed 0 there, 1 here\)"):
        run("resnet18 StepLR", seed=1)
    with pytest.raises(ValueError, match=r"settings \{\} there, \{'epochs': 1\} here"):
        run("resnet18 StepLR", seed=0, overrides={"epochs": 1})
    run("resnet18 StepLR", seed=0, overrides={"channels_last": True})  # a speed switch: still comparable
    assert sorted(experiments.load_runs(tmp_path, "lr-decay")) == ["resnet18 StepLR", "resnet18 constant LR"]
    with pytest.raises(ValueError, match="seed 0 there, 2 here"):  # --overwrite --only after another seed
        run("resnet18 StepLR", seed=2, overwrite=True)


def test_a_misspelt_records_folder_is_an_error_naming_what_is_there(tmp_path):
    (tmp_path / "degradation-cpu").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no folder .*degradaton-cpu; .* holds: degradation-cpu"):
        experiments.load_runs(tmp_path / "degradaton-cpu", "degradation")
    with pytest.raises(FileNotFoundError, match="no folder"):
        experiments.load_seed_runs(tmp_path / "laptop-resnet-9", "laptop")
    # A reference folder the course fills only on some machines (a GPU's records) may be missing:
    assert experiments.load_runs(tmp_path / "gpu-full", "degradation", missing_ok=True) == {}
    assert experiments.load_seed_runs(tmp_path / "gpu-full" / "fast", "fast", missing_ok=True) == {}
    assert experiments.load_runs(tmp_path / "degradation-cpu", "degradation") == {}  # there, and empty


def test_a_schedule_set_for_an_experiment_whose_runs_choose_their_own_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"schedule='one-cycle' does not apply to lr-decay: its runs set their own "
                                         r"schedules \(resnet18 constant LR: constant, resnet18 StepLR: step\)"):
        experiments.run_experiment("lr-decay", mode="smoke", overrides={"schedule": "one-cycle"}, out_dir=tmp_path)
    with pytest.raises(ValueError, match="does not apply to fast-ablation"):
        experiments.planned_runs("fast-ablation", "smoke", {"schedule": "constant"})
    specs = experiments.planned_runs("degradation", "smoke", {"schedule": "one-cycle"})  # one schedule for all: applies
    assert {spec.schedule for spec in specs} == {"one-cycle"}
    assert not list(tmp_path.iterdir())


def test_the_commands_default_output_folder_is_beside_the_data(tmp_path, monkeypatch, capsys):
    (tmp_path / "cifar10.npz").symlink_to(Path(__file__).resolve().parent.parent / "data" / "cifar10.npz")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert cli.main(["run", "degradation", "--mode", "smoke", "--only", "plain-20", "--no-progress"]) == 0
    assert (tmp_path / "runs" / "degradation-smoke" / "degradation__plain-20.json").is_file()
    assert f"run records written to {tmp_path / 'runs' / 'degradation-smoke'}" in capsys.readouterr().out
