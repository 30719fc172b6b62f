"""course_utils.cli: python -m course_utils list / run."""

from pathlib import Path

import pytest

from course_utils import cli
from course_utils.history import History
from tests.test_runner import interrupt_second_run


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


def test_overrides_are_read_as_python_literals_or_strings():
    assert cli.parse_overrides(["epochs=4", "train_size=None", "schedule=one-cycle", "lr_milestones=(0.75,)"]) \
        == {"epochs": 4, "train_size": None, "schedule": "one-cycle", "lr_milestones": (0.75,)}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        cli.parse_overrides(["epochs"])


def test_the_command_line_exits_130_on_ctrl_c_and_2_on_a_bad_mode(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    interrupt_second_run(monkeypatch)
    assert cli.main(["run", "lr-decay", "--out", str(tmp_path / "runs"), "--no-progress"]) == 130
    assert len(list((tmp_path / "runs").glob("*.json"))) == 1
    monkeypatch.setenv("COURSE_MODE", "bogus")
    assert cli.main(["run", "lr-decay", "--out", str(tmp_path / "other")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: COURSE_MODE='bogus' is not a run mode") and error.count("\n") == 1


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


def test_the_commands_default_output_folder_is_beside_the_data(tmp_path, monkeypatch, capsys):
    (tmp_path / "cifar10.npz").symlink_to(Path(__file__).resolve().parent.parent / "data" / "cifar10.npz")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert cli.main(["run", "degradation", "--mode", "smoke", "--only", "plain-20", "--no-progress"]) == 0
    assert (tmp_path / "runs" / "degradation-smoke" / "degradation__plain-20.json").is_file()
    assert f"run records written to {tmp_path / 'runs' / 'degradation-smoke'}" in capsys.readouterr().out
