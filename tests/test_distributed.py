"""Data-parallel training: sharding, and fit under torchrun with 2 CPU processes (gloo).

Each launch uses torchrun's ``--standalone`` rendezvous, which binds a free port of its own, so
launches never collide with each other, with a run left over from an earlier test, or with another
test suite on the machine. Proved robust on a busy machine (both cores kept busy, 5 runs in a row):

    for i in 1 2; do python3 -c "while True: pass" & done
    for i in 1 2 3 4 5; do python -m pytest tests/test_distributed.py -q || break; done
    pkill -f "while True: pass"
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_utils import checkpoint, data
from course_utils.history import History

WORKER = Path(__file__).with_name("distributed_worker.py")
REPO = Path(__file__).resolve().parent.parent


def torchrun(*args, timeout=240):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes share the 2 cores
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)


def test_each_rank_gets_a_disjoint_slice_of_every_global_batch(tiny):
    images, labels = tiny.train_images[:100], torch.arange(100)  # labels = image ids
    single = list(data.TensorLoader(images, labels, batch_size=40, seed=3))
    ranks = [list(data.TensorLoader(images, labels, batch_size=20, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(single) == 3
    for (x, y), (x0, y0), (x1, y1) in zip(single, *ranks):
        assert set(y0.tolist()).isdisjoint(y1.tolist())
        assert torch.equal(torch.cat([y0, y1]), y)  # the same images...
        assert torch.equal(torch.cat([x0, x1]), x)  # ...with the same crops and flips
    seen = torch.cat([y for rank in ranks for _, y in rank])
    assert sorted(seen.tolist()) == list(range(100))  # the union is the whole epoch


def test_a_tiny_last_batch_is_topped_up_so_every_rank_has_the_same_number_of_batches(tiny):
    images, labels = tiny.train_images[:41], torch.arange(41)
    ranks = [list(data.TensorLoader(images, labels, batch_size=10, rank=r, world_size=2, shuffle=False)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 3
    assert [len(y) for _, y in ranks[1]] == [10, 10, 1]


def test_two_processes_train_like_one_with_the_double_batch(tmp_path):
    from tests.distributed_worker import PER_PROCESS_BATCH, train

    result = torchrun(WORKER, "train", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # One run record and one checkpoint, written by process 0 only.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "run.json", "weights-rank0.pt",
                                                          "weights-rank1.pt"]
    rank0 = torch.load(tmp_path / "weights-rank0.pt")
    rank1 = torch.load(tmp_path / "weights-rank1.pt")
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # DDP keeps the copies identical

    single_dir = tmp_path / "single"
    single_dir.mkdir()
    single = train(single_dir, 2 * PER_PROCESS_BATCH)
    reference = torch.load(single_dir / "weights-rank0.pt")
    for key in rank0:
        torch.testing.assert_close(rank0[key], reference[key], rtol=1e-4, atol=1e-5)

    distributed = History.load_json(tmp_path / "run.json")
    assert distributed.step_loss == pytest.approx(single.step_loss, rel=1e-4)  # losses averaged over ranks
    assert distributed.train_acc == pytest.approx(single.train_acc)
    assert distributed.val_acc == pytest.approx(single.val_acc)

    from tests.distributed_worker import small_cnn

    plain = small_cnn()
    checkpoint.load_checkpoint(tmp_path / "checkpoint.pt", plain)  # a DDP checkpoint loads into a plain model
    assert torch.equal(plain[0].weight, rank0["0.weight"])


def test_a_failing_rank_stops_the_launcher_with_the_error_shown(tmp_path):
    result = torchrun(WORKER, "fail", tmp_path, timeout=180)
    assert result.returncode != 0
    assert "deliberate failure on rank 1" in result.stderr + result.stdout


def test_cli_under_torchrun_writes_one_record(tmp_path):
    result = torchrun("-m", "course_utils", "run", "degradation", "--mode", "smoke", "--only", "plain-20",
                      "--out", tmp_path, "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == ["degradation__plain-20.json"]
    record = History.load_json(tmp_path / "degradation__plain-20.json")
    assert record.config["batch_size"] == 64 and record.epochs_done == 1

