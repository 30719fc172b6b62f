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
    assert len(verdict) == 1 and verdict[0].endswith(("): reached", "): NOT reached")), printed
    # The first recipe (peak LR 0.1, a flip-only final test, 14 minutes) is no longer the recipe.
    assert laptop_recipe.main(["--report", str(RESULTS / "laptop-resnet9")]) == 0
    assert "no verdict against its target" in capsys.readouterr().out
    # The hour's records are judged by the hour's target, and one seed is not the three it asks for.
    assert laptop_recipe.main(["--report", str(RESULTS / "laptop-hour"), "--experiment", "laptop-hour"]) == 0
    verdict = capsys.readouterr().out.splitlines()[-1]
    assert verdict.startswith("target (>= 90% mean test accuracy over 3 seeds, <= 60 wall minutes"), verdict
    if len(list((RESULTS / "laptop-hour").glob("seed-*"))) < 3:
        assert "not shown: " in verdict
    # Another experiment's records are judged by that experiment's own recipe and target, or not at all.
    assert laptop_recipe.main(["--report", str(RESULTS / "laptop-15-minutes"), "--experiment", "laptop-hour"]) == 2
    assert "no laptop-hour run records" in capsys.readouterr().err


def test_the_reports_slow_hour_minutes_are_records_slow_hour_minutes(capsys):
    # One home for the verdict's minutes: the benchmark's report and notebook 08's verdict both use it.
    from course_utils.records import load_seed_runs, one_run_each, slow_hour_minutes

    folder = RESULTS / "laptop-15-minutes"
    assert laptop_recipe.main(["--report", str(folder)]) == 0
    printed = [float(line.split(" min (", 1)[1].split()[0]) for line in capsys.readouterr().out.splitlines()
               if " at the slow speed), " in line]
    runs = one_run_each(load_seed_runs(folder, "laptop"))
    expected = [round(slow_hour_minutes(history, json.loads((folder / f"seed-{seed}" / laptop_recipe.RECORD).read_text())), 2)
                for seed, history in runs.items()]
    assert printed == expected and len(expected) == 3


def test_a_run_on_a_fast_hour_is_judged_by_its_minutes_stretched_to_a_slow_hours_speed():
    from course_utils.history import History
    from course_utils.records import reference_speed_during, slow_hour_minutes

    history = History(images_per_s=[600.0, 900.0], epoch_seconds=[100.0, 100.0])  # 750 images/s on average
    benchmark = {"reference_images_per_s": 400.0, "recipe_images_per_s": 500.0, "slow_speed": 450.0,
                 "wall_seconds": 600.0}
    assert reference_speed_during(history, benchmark) == pytest.approx(600.0)  # 750 x 400 / 500
    assert slow_hour_minutes(history, benchmark) == pytest.approx(10 * 600 / 450)
    slower = {**benchmark, "slow_speed": 700.0}  # a slower hour than the slow one keeps its own minutes
    assert slow_hour_minutes(history, slower) == pytest.approx(10.0)
    assert slow_hour_minutes(history, {**benchmark, "slow_speed": 0}) == pytest.approx(10.0)


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
