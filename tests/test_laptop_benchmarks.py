"""benchmarks/laptop_recipe.py's verdict (read from the committed records) and benchmarks/laptop_trials.py,
the paired trials, run at smoke size on this CPU."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "data" / "results"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


laptop_recipe = _script("laptop_recipe")
laptop_trials = _script("laptop_trials")


def test_the_committed_records_of_the_recipe_get_a_verdict_and_the_first_recipes_do_not(capsys):
    # The records the README and notebook 08 quote are the current recipe's: a change of the recipe
    # without new records loses the verdict here.
    assert laptop_recipe.main(["--report", str(RESULTS / "laptop-15-minutes")]) == 0
    printed = capsys.readouterr().out
    verdict = [line for line in printed.splitlines() if line.startswith("target (>= 87% mean test accuracy")]
    assert len(verdict) == 1, printed
    # The first recipe (peak LR 0.1, a flip-only final test, 14 minutes) is no longer the recipe.
    assert laptop_recipe.main(["--report", str(RESULTS / "laptop-resnet9")]) == 0
    assert "no verdict against its target" in capsys.readouterr().out


def test_the_reports_work_check_is_records_slow_hour_work(capsys):
    # One home for the check: the benchmark's report and notebook 08's verdict both use it.
    from course_utils.records import load_seed_runs, one_run_each, slow_hour_work

    folder = RESULTS / "laptop-15-minutes"
    assert laptop_recipe.main(["--report", str(folder)]) == 0
    printed = [int(line.rsplit("work done = ", 1)[1].split()[0]) for line in capsys.readouterr().out.splitlines()
               if "work done = " in line]
    runs = one_run_each(load_seed_runs(folder, "laptop"))
    expected = [round(slow_hour_work(history, json.loads((folder / f"seed-{seed}" / laptop_recipe.RECORD).read_text())))
                for seed, history in runs.items()]
    assert printed == expected and len(expected) == 3


def test_a_report_needs_the_benchmark_records_beside_the_runs(tmp_path, capsys):
    folder = tmp_path / "laptop"
    shutil.copytree(RESULTS / "laptop-15-minutes", folder)
    (folder / "seed-1" / laptop_recipe.RECORD).unlink()
    assert laptop_recipe.main(["--report", str(folder)]) == 2
    assert "benchmark.json is missing" in capsys.readouterr().err


def test_a_trial_tests_the_final_weights_and_their_moving_averages_three_ways(tmp_path, capsys):
    out = tmp_path / "trial.json"
    assert laptop_trials.main(["--mode", "smoke", "--seconds", "30", "--ema", "0.9,0.5", "--set", "lr=0.05",
                               "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["settings"] == {"lr": "0.05"} and result["seconds"] == 30 and result["steps"] >= 1
    assert list(result["test_accuracy"]) == ["final weights", "moving average 0.9", "moving average 0.5"]
    for accuracies in result["test_accuracy"].values():
        assert list(accuracies) == ["plain", "flip", "six views"]
        assert all(0 <= accuracy <= 1 for accuracy in accuracies.values())
    assert "moving average 0.5" in capsys.readouterr().out
    assert laptop_trials.main(["--seconds", "1", "--out", str(out)]) == 2  # never replaces a result
    assert "already exists" in capsys.readouterr().err
    assert laptop_trials.main(["--seconds", "1", "--ema", "1.5", "--out", str(tmp_path / "new.json")]) == 2
    assert "between 0 and 1" in capsys.readouterr().err and not (tmp_path / "new.json").exists()
    with pytest.raises(SystemExit):
        laptop_trials.main(["--seconds", "1"])  # --out is required
