"""benchmarks/gpu_full.py, the prepared GPU command: its dry run trains every part at smoke size on
this CPU (one run of each experiment, 2 seeds of the fast recipe, each in its own process) and writes
the records in the layout the notebooks read, with the commit it was given."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from course_utils.records import load_runs, load_seed_runs, one_run_each

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gpu_full", REPO / "benchmarks" / "gpu_full.py")
gpu_full = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_full)


def test_the_dry_run_writes_every_part_with_its_provenance(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    out = tmp_path / "gpu-full"
    assert gpu_full.main(["--dry-run", "--out", str(out), "--jobs", "2", "--commit", "0123abc-test"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert [run["status"] for run in summary["runs"]] == ["done"] * 5, summary["runs"]
    assert summary["meta"]["git_commit"] == "0123abc-test" and summary["meta"]["dry_run"] is True
    records = {experiment: load_runs(out, experiment) for experiment in ("degradation", "lr-decay", "depth",
                                                                         "fast-ablation")}
    fast = one_run_each(load_seed_runs(out / "fast", "fast"))
    assert [len(runs) for runs in records.values()] == [1, 1, 1, 1] and sorted(fast) == [0, 1]
    for history in [*fast.values(), *(h for runs in records.values() for h in runs.values())]:
        assert history.meta["git_commit"] == "0123abc-test" and history.meta["mode"] == "smoke"
        assert history.config["step_path"] == "eager"  # a CPU has no CUDA graphs
    assert summary["fast"]["seeds"]["0"]["test_acc"] == fast[0].test_acc
    assert [row["model"] for row in summary["speed"]] == ["resnet-20", "resnet-56", "resnet18"] * 2
    assert all(row["images_per_s"] > 0 for row in summary["speed"][:3])
    assert "whole command" in printed and (out / "logs" / "fast-seeds.log").exists()


def test_it_refuses_a_folder_with_files_and_a_cpu_without_the_dry_run(tmp_path, capsys, monkeypatch):
    (tmp_path / "notes.txt").write_text("mine")
    assert gpu_full.main(["--dry-run", "--out", str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_full.main(["--out", str(tmp_path / "new"), "--commit", "abc"]) == 2
    assert "no CUDA GPU here" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_on_a_gpu_it_needs_the_real_commit(tmp_path, capsys, monkeypatch):
    import course_utils.devices

    monkeypatch.setattr(course_utils.devices, "pick_device", lambda verbose=True: torch.device("cuda"))
    assert gpu_full.main(["--out", str(tmp_path / "new")]) == 2
    assert "--commit" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu_full.main(["--budget", "soon"])
