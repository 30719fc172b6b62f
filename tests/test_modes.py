"""course_utils.modes: the mode switch and the settings table."""

import pytest
import torch

from course_utils import modes


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
        modes.get_settings("nope", "smoke")


def test_every_experiment_has_every_mode_and_modes_grow():
    for experiment, table in modes.SETTINGS.items():
        assert set(table) == set(modes.MODES), experiment
        smoke, quick, full = (table[m] for m in modes.MODES)
        def images_seen(settings):  # None = all 50,000 training images
            return (settings.train_size or 50_000) * settings.epochs

        assert images_seen(smoke) < images_seen(quick) <= images_seen(full), experiment


def test_describe_prints_mode_device_and_sizes(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_MODE", "quick")
    modes.describe("degradation")
    out = capsys.readouterr().out
    assert "mode: quick (from COURSE_MODE" in out
    assert "device: " in out
    assert "degradation: train_size=2,048, test_size=500, epochs=3" in out
