"""course_utils.records: the run record's schema, and reading records back."""

import json
from pathlib import Path

import pytest

from course_utils import records, runner
from course_utils.history import History

ROOT = Path(__file__).resolve().parent.parent


def test_load_runs_keeps_every_record_when_experiments_share_a_run_label(tmp_path):
    # save-load, fast and depth all have a run called "resnet18": none may replace another.
    for experiment in ("save-load", "fast", "depth"):
        history = History()
        history.config.update(experiment=experiment, run="resnet18")
        history.save_json(tmp_path / f"{experiment}__resnet18.json")
    every = records.load_runs(tmp_path)
    assert sorted(every) == ["depth__resnet18", "fast__resnet18", "save-load__resnet18"]
    assert list(records.load_runs(tmp_path, "fast")) == ["resnet18"]

    copy = History()
    copy.config.update(experiment="fast", run="resnet18")
    copy.save_json(tmp_path / "fast__resnet18-copy.json")  # a second record of the same run
    with pytest.raises(ValueError, match="both records of the run 'resnet18'"):
        records.load_runs(tmp_path, "fast")


def test_a_misspelt_records_folder_is_an_error_naming_what_is_there(tmp_path):
    (tmp_path / "degradation-cpu").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no folder .*degradaton-cpu; .* holds: degradation-cpu"):
        records.load_runs(tmp_path / "degradaton-cpu", "degradation")
    with pytest.raises(FileNotFoundError, match="no folder"):
        records.load_seed_runs(tmp_path / "laptop-resnet-9", "laptop")
    # A reference folder the course fills only on some machines (a GPU's records) may be missing:
    assert records.load_runs(tmp_path / "gpu-full", "degradation", missing_ok=True) == {}
    assert records.load_seed_runs(tmp_path / "gpu-full" / "fast", "fast", missing_ok=True) == {}
    assert records.load_runs(tmp_path / "degradation-cpu", "degradation") == {}  # there, and empty


def test_every_key_a_run_writes_is_in_the_written_schema(tmp_path, cifar):
    """A laptop run (a per-epoch test sample, then one final test, a time budget) and a degradation run
    with a time budget of the whole experiment write between them every writer's keys."""
    laptop = runner.run_experiment("laptop", mode="smoke", data=cifar, progress=False, out_dir=tmp_path / "laptop")
    budgeted = runner.run_experiment("degradation", mode="smoke", data=cifar, progress=False, only=["resnet-20"],
                                     budget_minutes=5, out_dir=tmp_path / "degradation")
    written = [*laptop.values(), *budgeted.values()]
    assert all(records.undeclared_keys(history) == [] for history in written), \
        [records.undeclared_keys(history) for history in written]
    keys = {key for history in written for key in history.config}
    assert {"model_name", "schedule", "time_budget_choice", "val_images", "step_path"} <= keys
    assert written[0].model_name == "resnet9" and written[1].model_name == "resnet-20"
    assert "final_test" in written[0].meta and written[0].test_acc == written[0].meta["final_test"]["accuracy"]
    planted = History(config={"modle": "typo"}, meta={"device": "cpu"})
    assert records.undeclared_keys(planted) == ["config['modle']"]


def test_every_committed_record_keeps_to_the_schema():
    committed = [path for path in sorted((ROOT / "data" / "results").rglob("*.json"))
                 if "config" in json.loads(path.read_text())]
    assert len(committed) > 50
    wrong = {str(path.relative_to(ROOT)): records.undeclared_keys(History.load_json(path)) for path in committed}
    assert {path: keys for path, keys in wrong.items() if keys} == {}


def test_contributing_shows_the_schema_as_the_records_module_declares_it():
    table = records.schema_markdown()
    assert table.count("\n") == len(records.CONFIG) + len(records.META) + 1  # a header, its rule, a row per key
    assert table in (ROOT / "CONTRIBUTING.md").read_text(), (
        "CONTRIBUTING.md's table of the run record is not records.CONFIG and records.META; paste the output of "
        "python -c 'from course_utils import records; print(records.schema_markdown())'")


def test_load_seed_runs_keeps_every_run_of_every_seed(tmp_path):
    for seed in (0, 2, 10):
        for label in ("plain-20", "resnet-20"):
            history = History(config={"experiment": "degradation", "run": label, "seed": seed})
            history.save_json(tmp_path / f"seed-{seed}" / f"degradation__{label}.json")
    (tmp_path / "seed-3").mkdir()  # a seed still to be trained
    seeds = records.load_seed_runs(tmp_path, "degradation")
    assert list(seeds) == [0, 2, 10] and all(sorted(runs) == ["plain-20", "resnet-20"] for runs in seeds.values())
    with pytest.raises(ValueError, match=r"one run per seed expected, found \{0: \['plain-20', 'resnet-20'\]"):
        records.one_run_each(seeds)
    alone = {seed: {"resnet9": runs["plain-20"]} for seed, runs in seeds.items()}
    assert records.one_run_each(alone) == {seed: runs["plain-20"] for seed, runs in seeds.items()}
    stray = History(config={"experiment": "degradation", "run": "plain-56", "seed": 7})
    stray.save_json(tmp_path / "seed-2" / "degradation__plain-56.json")  # another seed's run in seed-2/
    with pytest.raises(ValueError, match=r"holds runs of several seeds \(\[2, 7\]\)"):
        records.load_seed_runs(tmp_path, "degradation")
