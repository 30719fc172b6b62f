"""benchmarks/lr_decay_noise.py: the other-draws run is the constant run until the decay, then not."""

import subprocess
import sys
from pathlib import Path

from course_utils.history import History
from course_utils.records import load_seed_runs

REPO = Path(__file__).resolve().parents[1]


def test_the_other_draws_run_shares_the_constant_runs_start_and_leaves_it_after_the_decay(tmp_path):
    out = tmp_path / "noise"
    command = [sys.executable, str(REPO / "benchmarks" / "lr_decay_noise.py"), "--mode", "smoke", "--seeds", "1",
               "--out", str(out)]
    finished = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    constant = load_seed_runs(out, "lr-decay")[0]["resnet18 constant LR"]
    other = History.load_json(out / "other-draws" / "seed-0.json")
    steps_before = other.config["other_draws_from_epoch"] * len(other.step_loss) // other.epochs_done
    assert 0 < steps_before < len(other.step_loss)
    assert other.step_loss[:steps_before] == constant.step_loss[:steps_before]
    assert other.step_loss[steps_before + 1:] != constant.step_loss[steps_before + 1:]  # other batches after it
    assert "lesson shows in" in finished.stdout
    again = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert again.returncode == 2 and "never written over" in again.stderr + again.stdout
