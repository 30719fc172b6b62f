"""course_utils.schedules: a schedule's name, the scheduler it builds, and where it is stepped."""

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from course_utils import schedules
from course_utils.experiments import get_settings


def make(settings, schedule=None, **arguments):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    settings = replace(settings, schedule=schedule) if schedule else settings
    return schedules.make_scheduler(optimizer, settings, **arguments)


def test_schedules_scale_the_articles_step_and_the_papers_milestones():
    settings = get_settings("lr-decay", "paper")  # 30 epochs, the article's step of 10
    assert make(settings, "step").step_size == 10
    assert make(get_settings("lr-decay", "full"), "step").step_size == 8  # of 24
    assert sorted(make(get_settings("depth", "paper"), "multistep").milestones) == [82, 123]  # 50% and 75% of 164
    assert make(settings, "constant") is None


def test_a_runs_schedule_is_its_settings_field_or_the_default_its_milestones_imply():
    depth = get_settings("depth", "full")  # lr_milestones (0.5, 0.75), no schedule given
    assert depth.schedule is None and schedules.schedule_of(depth) == "multistep"
    assert schedules.schedule_of(replace(depth, lr_milestones=())) == "constant"
    assert schedules.schedule_of(get_settings("fast", "full")) == "one-cycle"
    assert [schedules.schedule_interval(name) for name in schedules.SCHEDULES] == ["epoch", "epoch", "epoch", "step"]
    with pytest.raises(ValueError, match="schedule='cosine': schedule takes one of constant, step"):
        replace(depth, schedule="cosine")  # refused by the setting's own check, before any training
    anything = SimpleNamespace(schedule="cosine", epochs=3, lr_milestones=(), warmup_fraction=0.0)
    with pytest.raises(ValueError, match="unknown schedule 'cosine'"):  # and by the scheduler, whatever its caller
        schedules.make_scheduler(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), anything)
