"""course_utils.modes: the mode switch and the settings table."""

import re

import pytest
import torch

from course_utils import experiments, modes, runner


def test_mode_comes_from_the_environment(monkeypatch):
    for mode in modes.MODES:
        monkeypatch.setenv("COURSE_MODE", mode)
        assert modes.current_mode() == mode


def test_default_mode_depends_on_cuda(monkeypatch):
    monkeypatch.delenv("COURSE_MODE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert modes.current_mode() == "full"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert modes.current_mode() == "quick"


def test_unknown_mode_lists_the_valid_ones(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "fast")
    with pytest.raises(ValueError, match="smoke, quick, full"):
        modes.current_mode()
    with pytest.raises(ValueError, match="unknown experiment"):
        experiments.get_settings("nope", "smoke")


def test_every_experiment_has_every_mode_and_modes_grow():
    for experiment, entry in experiments.EXPERIMENTS.items():
        assert {"smoke", "quick", "full"} <= set(entry.settings) <= set(modes.MODES), experiment
        smoke, quick, full, paper = (experiments.get_settings(experiment, m) for m in modes.MODES)
        def images_seen(settings):  # None = all 50,000 training images
            return (settings.train_size or 50_000) * settings.epochs

        assert images_seen(smoke) < images_seen(quick) <= images_seen(full) <= images_seen(paper), experiment


def test_paper_mode_is_the_papers_schedule_and_full_mode_is_shorter():
    assert experiments.get_settings("depth", "paper").epochs == 164
    assert "resnet-110" in experiments.get_settings("depth", "paper").models
    assert experiments.get_settings("depth", "full").epochs < 164
    assert experiments.get_settings("fast", "paper") == experiments.get_settings("fast", "full")  # no paper schedule of its own


def test_describe_prints_mode_device_and_sizes(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_MODE", "quick")
    experiments.describe("degradation")
    out = capsys.readouterr().out
    assert "mode: quick (from COURSE_MODE" in out
    assert "device: " in out
    assert "degradation: data: train_size=2,048, test_size=500, batch_size=64; model: models=plain-20" in out


def test_describe_gives_the_t4_estimate_in_full_mode_and_the_budget(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_TIME_BUDGET", "20")
    experiments.describe("lr-decay", mode="full")
    out = capsys.readouterr().out
    assert "[estimate on a T4: " in out
    assert "COURSE_TIME_BUDGET=20 min chooses its epochs" in out


# --- settings given by hand (--set, overrides=): checked by type and range before anything runs ---

def test_every_registered_setting_is_one_its_check_accepts_unchanged():
    from dataclasses import fields

    from course_utils import experiments
    from course_utils.modes import check_setting

    for name, entry in experiments.EXPERIMENTS.items():
        for mode, settings in entry.settings.items():
            for field in fields(settings):
                value = getattr(settings, field.name)
                assert check_setting(field.name, value) == value, (name, mode, field.name)


def test_each_setting_is_declared_once_and_every_way_of_making_settings_checks_it():
    from dataclasses import fields, replace

    from course_utils.modes import GROUPS, SETTING_CHECKS, Settings

    declared = fields(Settings)
    assert [item.name for item in declared] == list(SETTING_CHECKS)  # every field has its check, from the field
    assert sorted(name for names in GROUPS.values() for name in names) == sorted(SETTING_CHECKS)
    assert all(item.metadata["takes"] and item.metadata["group"] in GROUPS for item in declared)
    laptop = experiments.get_settings("laptop", "quick")
    with pytest.raises(ValueError, match=r"warmup_fraction=1\.0: warmup_fraction takes a number from 0 to below 1"):
        replace(laptop, warmup_fraction=1.0)  # replace checks too, not only --set
    with pytest.raises(ValueError, match=r"batch_size=0: batch_size takes a whole number of images, at least 1"):
        Settings(train_size=None, test_size=None, batch_size=0, epochs=1, lr=0.1)  # so does a registry entry
    converted = replace(laptop, models="resnet9,resnet18", nesterov="false", time_budget=60)
    assert converted.models == ("resnet9", "resnet18") and converted.nesterov is False
    assert converted.time_budget == 60 and isinstance(converted.time_budget, int)  # 60 stays 60, not 60.0


@pytest.mark.parametrize("text, expected", [("false", False), ("False", False), ("off", False), ("0", False),
                                            ("true", True), ("yes", True), ("on", True), ("1", True)])
def test_a_flag_given_as_text_means_what_it_says(text, expected):
    from course_utils import cli, experiments

    settings = runner.apply_overrides(experiments.get_settings("laptop", "quick"),
                                           cli.parse_overrides([f"nesterov={text}", f"flip_tta={text}",
                                                                f"compile={text}"]))
    assert settings.nesterov is expected and settings.flip_tta is expected and settings.compile is expected


@pytest.mark.parametrize("text", ["none", "None", " NONE"])
def test_none_given_as_text_means_none_where_a_setting_takes_it_and_is_refused_elsewhere(text):
    from course_utils import cli, experiments

    laptop = experiments.get_settings("laptop", "quick")
    settings = runner.apply_overrides(laptop, cli.parse_overrides([f"test_size={text}", f"channels_last={text}"]))
    assert settings.test_size is None and settings.channels_last is None
    with pytest.raises(ValueError, match=r"epochs=None: epochs takes a whole number"):
        runner.apply_overrides(laptop, cli.parse_overrides([f"epochs={text}"]))


@pytest.mark.parametrize("pair, takes", [
    ("schedule=cosine", "one of constant, step, multistep, one-cycle"), ("schedule=one_cycle", "one-cycle"),
    ("epochs=abc", "a whole number"), ("epochs=2.5", "a whole number"), ("epochs=0", "at least 1"),
    ("epochs=-1", "at least 1"), ("lr=0.1.", "a number above 0"), ("label_smoothing=1.5", "below 1"),
    ("batch_size=0", "at least 1"), ("models=()", "one or more model names"),
    ("models=resnet9,resnet9", "each once"), ("width=0", "at least 1"), ("nesterov=maybe", "true or false"),
    ("time_budget=inf", "above 0"), ("amp=fp8", "bf16"), ("lr_milestones=1.5", "between 0 and 1"),
    ("epoch=3", "the settings are"),
])
def test_a_wrong_setting_is_refused_with_its_name_and_what_it_takes(pair, takes):
    from course_utils import cli, experiments

    with pytest.raises(ValueError, match=re.escape(takes)) as refused:
        runner.apply_overrides(experiments.get_settings("laptop", "quick"), cli.parse_overrides([pair]))
    assert pair.split("=")[0] in str(refused.value)


def test_the_command_line_refuses_a_wrong_setting_in_one_line_before_loading_data(tmp_path, capsys, monkeypatch):
    from course_utils import cli, data

    monkeypatch.setattr(data, "load_cifar10", lambda *a, **k: pytest.fail("the data was loaded"))
    monkeypatch.setenv("COURSE_MODE", "smoke")
    assert cli.main(["run", "lr-decay", "--out", str(tmp_path), "--set", "schedule=cosine"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and error.startswith("error: schedule='cosine'") and "one-cycle" in error
    assert not list(tmp_path.iterdir())


def test_compile_takes_a_torch_compile_mode_and_each_record_says_how_a_step_ran():
    from course_utils.devices import Speed

    assert modes.check_setting("compile", "reduce-overhead") == "reduce-overhead"
    assert modes.check_setting("compile", "false") is False and modes.check_setting("compile", "on") is True
    with pytest.raises(ValueError, match=r"compile='fastest': compile takes true, false or a torch.compile mode"):
        modes.check_setting("compile", "fastest")
    with pytest.raises(ValueError, match="compile='fastest'"):
        Speed(compile="fastest")
    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # a device name: no GPU needed to ask
    assert Speed().step_path(cpu) == "eager" and Speed(compile=True).compile_mode == "default"
    graphs = Speed(compile="reduce-overhead")
    assert graphs.step_path(cuda) == "compiled, CUDA graphs" and graphs.uses_cuda_graphs(cuda)
    assert graphs.step_path(cpu) == "compiled" and not graphs.uses_cuda_graphs(cpu)  # no CUDA graphs on a CPU
    assert experiments.get_settings("fast", "full").speed.uses_cuda_graphs(cuda)


def test_a_time_budget_that_chooses_nothing_is_refused_by_name_when_first_read(monkeypatch, capsys):
    for value in ("-5", "0", "inf", "nan"):
        monkeypatch.setenv("COURSE_TIME_BUDGET", value)
        with pytest.raises(ValueError, match=rf"COURSE_TIME_BUDGET='{value}' is not a number of minutes above 0"):
            experiments.describe("degradation", mode="smoke")  # announced nowhere: refused at once
    with pytest.raises(ValueError, match="budget_minutes=-1 is not a number of minutes above 0"):
        runner.run_experiment("degradation", mode="smoke", budget_minutes=-1, out_dir=None)
