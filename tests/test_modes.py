"""course_utils.modes: the mode switch and the settings table."""

import pytest
import torch

from course_utils import experiments, modes


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
    assert "estimate on a T4 (an assumption, see course_utils/estimates.py): " in out
    assert "COURSE_TIME_BUDGET=20 min chooses its epochs" in out
