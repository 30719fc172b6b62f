"""Learning-rate schedules: the one place a schedule's name is defined and turned into a scheduler.

A run's schedule is its settings' ``schedule`` field (``schedule_of``); a run that trains with its
own (notebook 05's constant-vs-StepLR pair, a row of the ablation) changes that field like any other
setting, so the record says exactly what was trained.

* ``constant``   no scheduler.
* ``step``       the article's ``StepLR``: the LR divided by 10 every third of the run (10 of 30 epochs).
* ``multistep``  the paper's: divided by 10 at the fractions ``lr_milestones`` (50% and 75%).
* ``one-cycle``  up linearly for ``warmup_fraction`` of the steps, then down to 0 (Smith 2018).
"""

from __future__ import annotations

from typing import Protocol

import torch

from course_utils.article import article_scheduler
from course_utils.training import TimeBudget

SCHEDULES = ("constant", "step", "multistep", "one-cycle")


class ScheduleSettings(Protocol):
    """The fields of ``modes.Settings`` a schedule reads (modes imports ``SCHEDULES`` from here)."""

    epochs: int
    lr_milestones: tuple[float, ...]
    schedule: str | None
    warmup_fraction: float


def schedule_of(settings: ScheduleSettings) -> str:
    """The schedule a run with ``settings`` trains with: ``settings.schedule``, or by default the
    paper's ``multistep`` where ``lr_milestones`` are given and ``constant`` where not."""
    if settings.schedule is not None:
        return settings.schedule
    return "multistep" if settings.lr_milestones else "constant"


def schedule_interval(schedule: str) -> str:
    """How often ``training.fit`` steps the scheduler of ``schedule``: "step" (one-cycle) or "epoch"."""
    return "step" if schedule == "one-cycle" else "epoch"


def make_scheduler(optimizer: torch.optim.Optimizer, settings: ScheduleSettings, steps_per_epoch: int | None = None,
                   budget: TimeBudget | None = None):
    """The learning-rate scheduler of a run with ``settings`` (None for a constant LR).

    ``step`` and ``multistep`` are stepped once per epoch, their milestones the fractions
    ``settings.lr_milestones`` of ``settings.epochs``. ``one-cycle``: ``one_cycle_factor`` times the
    LR, stepped once per optimiser step (``schedule_interval``), so it needs ``steps_per_epoch``. Its
    progress is the share of the ``settings.epochs`` steps done or, with a ``budget`` (the same one
    given to ``fit(time_limit=...)``), the share of the budget spent (of its time, or of its images),
    whichever is further along.
    """
    schedule = schedule_of(settings)
    if schedule not in SCHEDULES:  # before any shortcut below: "cosine" must not train at a constant LR
        raise ValueError(f"unknown schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")
    if schedule == "one-cycle":
        return _one_cycle(optimizer, settings, steps_per_epoch, budget)
    milestones = sorted({max(1, round(fraction * settings.epochs)) for fraction in settings.lr_milestones})
    if schedule == "constant" or not milestones:
        return None
    if schedule == "step":
        return article_scheduler(optimizer, step_size=milestones[0])
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)  # "multistep"


def _one_cycle(optimizer: torch.optim.Optimizer, settings: ScheduleSettings, steps_per_epoch: int | None,
               budget: TimeBudget | None) -> torch.optim.lr_scheduler.LambdaLR:
    if not steps_per_epoch:
        raise ValueError("the one-cycle schedule is set per step: pass steps_per_epoch (len(train_loader))")
    if not 0 <= settings.warmup_fraction < 1:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {settings.warmup_fraction!r}")
    total = settings.epochs * steps_per_epoch

    def factor(step: int) -> float:
        progress = (step + 0.5) / total  # the middle of the step: neither the first nor the last LR is 0
        if budget is not None:
            progress = max(progress, budget.fraction)
        return one_cycle_factor(progress, settings.warmup_fraction)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def one_cycle_factor(progress: float, warmup_fraction: float) -> float:
    """The LR multiplier of the triangular one-cycle schedule at ``progress`` (0 = start, 1 = end).

    It rises linearly from 0 to 1 until ``warmup_fraction``, then falls linearly back to 0 at the
    end (Smith 2018, "super-convergence"; airbench and the DAWNBench ResNet-9 use this shape). With
    ``warmup_fraction=0`` it is a plain linear decay. A short run needs every step to count: a
    high LR early to move fast, a near-zero LR at the end to settle into the minimum it found.
    """
    if progress < warmup_fraction:
        return progress / warmup_fraction
    return max(1.0 - progress, 0.0) / (1.0 - warmup_fraction)
