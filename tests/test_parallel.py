"""course_utils.parallel and ``python -m course_utils run --jobs N``: several runs at once, each in its
own process, with the records of the same runs one after another."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from course_utils import cli
from course_utils.parallel import Job, run_jobs

REPO = Path(__file__).resolve().parent.parent
# One thread per process in both ways of running, so that a CPU computes the same sums in the same order.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_MODE": "smoke"}


def course_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course_utils", *args], capture_output=True, text=True, cwd=REPO,
                          env=ENV, timeout=600)  # sized for a slow, busy machine: each process imports torch


def test_jobs_write_the_records_of_the_same_runs_one_after_another(tmp_path, cifar):
    from course_utils import runner

    settings = {"epochs": 2, "train_size": 192}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each job below gets: a CPU sums in another order with another number of threads
    try:
        one_by_one = runner.run_experiment("degradation", mode="smoke", data=cifar, overrides=settings,
                                                only=["plain-20", "resnet-20"], out_dir=tmp_path / "one",
                                                progress=False)
    finally:
        torch.set_num_threads(threads)
    at_once = course_command("run", "degradation", "--only", "plain-20", "resnet-20", "--set", "epochs=2",
                             "train_size=192", "--out", str(tmp_path / "two"), "--jobs", "2")
    assert at_once.returncode == 0, at_once.stdout + at_once.stderr
    assert "2 run(s), 2 at a time" in at_once.stdout and "[resnet-20] --- resnet-20 ---" in at_once.stdout
    for label in ("plain-20", "resnet-20"):
        first = json.loads(one_by_one[label].save_json(tmp_path / f"{label}.json").read_text())
        second = json.loads((tmp_path / "two" / f"degradation__{label}.json").read_text())
        for series in ("step_loss", "step_lr", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_end_steps"):
            assert first[series] == second[series], (label, series)  # bit for bit
        assert second["config"]["overrides"] == settings
        assert second["config"]["step_path"] == "eager" and second["meta"]["mode"] == "smoke"
    assert sorted(path.name for path in (tmp_path / "two").iterdir()) == [
        "degradation__plain-20.json", "degradation__resnet-20.json"]  # no lock file left behind


def test_a_job_past_the_deadline_is_stopped_cleanly_and_one_that_cannot_finish_never_starts(tmp_path):
    out, logs = tmp_path / "out", tmp_path / "logs"
    endless = Job("degradation", "plain-20", out, "smoke", settings=("epochs=100000",), name="endless")
    too_long = Job("degradation", "resnet-20", out, "smoke", expected_seconds=3600, name="too long")
    stopped, skipped = run_jobs([endless, too_long], at_once=2, deadline=time.monotonic() + 15, echo=False,
                                log_dir=logs)
    assert stopped.status == "stopped at the deadline" and skipped.status == "not started"
    assert skipped.returncode is None and sorted(path.name for path in logs.iterdir()) == ["endless.log"]
    assert not out.exists() or list(out.iterdir()) == []  # no record of the stopped run, no lock file left
    log = (logs / "endless.log").read_text()
    if "--- plain-20 ---" in log:  # training had begun (unless starting took 15 s on a very busy machine):
        assert stopped.returncode == 130 and "Interrupted during plain-20" in log  # stopped as Ctrl-C stops a run


def test_jobs_refuse_what_they_cannot_do_before_any_process_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    with pytest.raises(SystemExit):
        cli.main(["run", "degradation", "--jobs", "0"])
    assert "not a number of processes" in capsys.readouterr().err
    assert cli.main(["run", "degradation", "--jobs", "2", "--budget", "5", "--out", str(tmp_path)]) == 2
    assert "--jobs cannot share a time budget" in capsys.readouterr().err
    assert cli.main(["run", "degradation", "--jobs", "2", "--only", "resnet-2O", "--out", str(tmp_path)]) == 2
    assert "has no run(s) ['resnet-2O']" in capsys.readouterr().err
    (tmp_path / "degradation__plain-56.json").write_text("{}")
    assert cli.main(["run", "degradation", "--jobs", "2", "--out", str(tmp_path)]) == 2
    assert "run records already exist" in capsys.readouterr().err
    assert (tmp_path / "degradation__plain-56.json").read_text() == "{}"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["degradation__plain-56.json"]
