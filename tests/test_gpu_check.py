"""benchmarks/gpu_check.py refuses what it cannot do, before any work (its --dry-run is run by hand:
a minute on 2 cores, see benchmarks/README.md)."""

import importlib.util
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)


def test_without_a_gpu_it_says_to_use_the_dry_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path / "check")]) == 2
    assert "no CUDA GPU here" in capsys.readouterr().err
    assert not (tmp_path / "check").exists()


def test_it_never_writes_over_earlier_records(tmp_path, capsys, monkeypatch):
    (tmp_path / "speed.json").write_text("{}")
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path)]) == 2
    assert "already holds records" in capsys.readouterr().err


def test_a_dry_run_does_not_need_the_committed_records_folder(monkeypatch):
    """On a fresh clone data/results/gpu-check holds the committed records: a dry run without --out must
    go past them (to a folder of its own) instead of refusing."""
    import course_utils.data

    committed = REPO / "data" / "results" / "gpu-check"
    before = sorted(path.name for path in committed.iterdir())
    monkeypatch.chdir(REPO)

    def stop_here(*args, **kwargs):
        raise RuntimeError("past the output folder check")

    monkeypatch.setattr(course_utils.data, "load_cifar10", stop_here)  # the step after the check
    with pytest.raises(RuntimeError, match="past the output folder check"):
        gpu_check.main(["--dry-run"])
    assert sorted(path.name for path in committed.iterdir()) == before
