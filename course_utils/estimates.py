"""How long training will take: the T4 assumption full mode is sized by, a measurement on this
device, and the epochs that fit a time budget.

How full mode was sized: the time of one training step on a T4 (the free Colab GPU) is assumed to be
``batch x 3 x forward MACs / T4_MACS_PER_SECOND + weight layers x T4_SECONDS_PER_LAYER``, plus about a
third of a step's arithmetic per test image for the evaluation after each epoch.

* ``T4_MACS_PER_SECOND``: 4e12 multiply-accumulates (8 TFLOP/s) in fp16 autocast, about 12% of the
  T4's 65 TFLOP/s fp16 tensor-core peak. An assumption: no T4 has run the course yet.
* ``T4_SECONDS_PER_LAYER``: the fixed cost of launching a layer's kernels (forward, backward, the
  optimiser) in each step. Measured on an H200 machine (data/results/gpu-check/speed.json): 0.36-0.53
  ms per weight layer at batch 128 for every model from ResNet-20 to ResNet-50, where these small
  models are bound by launches, not arithmetic; a T4 host is assumed no faster.

``python -m course_utils list`` prints the estimates; tests/test_estimates.py keeps each notebook's
full mode under 30 minutes by them. ``estimate_epoch_seconds`` gives them per run, by the T4
assumption or measured on this device; ``runner.run_experiment`` prints them before it trains.
"""

from __future__ import annotations

import copy
import functools
import math
import os
from dataclasses import replace

import torch
from torch import nn

from course_utils import models
from course_utils.data import Cifar10
from course_utils.modes import RunSpec, Settings
from course_utils.training import measure_training_speed

T4_MACS_PER_SECOND = 4e12
T4_SECONDS_PER_LAYER = 0.5e-3
SHORT_RUN_STEPS = 8


def t4_step_seconds(model: nn.Module, batch_size: int) -> float:
    """Assumed seconds of one training step of ``model`` on a T4 (see the module's docstring)."""
    layers = sum(isinstance(module, (nn.Conv2d, nn.Linear)) for module in model.modules())
    return batch_size * 3 * models.count_macs(model) / T4_MACS_PER_SECOND + layers * T4_SECONDS_PER_LAYER


def measured_step_seconds(model: nn.Module, settings: Settings, data: Cifar10, device: torch.device) -> float:
    """Seconds of one training step of a copy of ``model`` on ``device``, at the run's batch size,
    precision and layout: two untimed steps (the first call in a process also pays for setting up
    kernels: it made a first estimate 3x too long), then two timed. The model itself is not touched.

    A run of at most ``SHORT_RUN_STEPS`` steps (smoke mode) gets one untimed and one timed step: a
    measurement should not take as long as the run it predicts, and so short a run needs no accuracy."""
    batch = min(settings.batch_size, len(data.train_images))
    run_steps = settings.epochs * math.ceil(len(data.train_images) / settings.batch_size)
    warmup, steps = (1, 1) if run_steps <= SHORT_RUN_STEPS else (2, 2)
    images = data.train_images[:batch].float().div(255)  # the speed does not depend on normalising
    rate = measure_training_speed(copy.deepcopy(model), images, data.train_labels[:batch], steps=steps,
                                  warmup=warmup, device=device, speed=replace(settings.speed, compile=False))
    return batch / rate


def epoch_seconds(step_seconds: float, settings: Settings, train_images: int, test_images: int) -> float:
    """One epoch: its training steps, then the test pass (forward only, about a third of a
    training step's work per image; twice that with test-time flipping)."""
    steps = math.ceil(train_images / settings.batch_size)
    test = test_images / settings.batch_size * step_seconds / 3 * (2 if settings.flip_tta else 1)
    return steps * step_seconds + test


def estimate_epoch_seconds(specs: list[RunSpec], settings: Settings, *, device: torch.device | str,
                           data: Cifar10 | None = None, seed: int = 0) -> dict[str, float]:
    """Seconds per epoch of each run in ``specs`` with ``settings``: ``{label: seconds}``.

    ``device="t4"``: by the T4 assumption (no data needed). Otherwise measured on that device: a few
    timed training steps of each run's freshly built model on ``data`` (which must already be the
    experiment's subset). torch.compile's compilation is not included.
    """
    train_images = len(data.train_images) if data is not None else (settings.train_size or 50_000)
    test_images = len(data.test_images) if data is not None else (settings.test_size or 10_000)
    test_images = min(test_images, settings.val_size or test_images)  # tested after each epoch
    estimates = {}
    for spec in specs:
        run_settings = spec.settings(settings)
        if device == "t4":
            step = _t4_step_seconds(spec.model, run_settings.width, run_settings.batch_size)
        else:
            if data is None:
                raise ValueError("measuring on a device needs the data (the experiment's subset)")
            step = measured_step_seconds(spec.build_model(settings, seed), run_settings, data, torch.device(device))
        estimates[spec.label] = epoch_seconds(step, run_settings, train_images, test_images)
    return estimates


@functools.lru_cache(maxsize=None)
def _t4_step_seconds(model: str, width: int | None, batch_size: int) -> float:
    """``t4_step_seconds`` of a named model, once per process: counting its MACs runs it."""
    return t4_step_seconds(models.build(model, width), batch_size)


def run_seconds(seconds_per_epoch: float, settings: Settings) -> float:
    """A run's expected seconds: its epochs, or its own time budget (the laptop recipe) or image budget
    if that is shorter."""
    epochs = settings.epochs
    if settings.image_budget:
        epochs = min(epochs, settings.image_budget / (settings.train_size or 50_000))
    return min(epochs * seconds_per_epoch, settings.time_budget or math.inf)


def t4_seconds(specs: list[RunSpec], settings: Settings) -> float:
    """Estimated seconds of all runs in ``specs`` on a T4."""
    return sum(run_seconds(seconds, settings) for seconds in estimate_epoch_seconds(specs, settings, device="t4").values())


def epochs_for_budget(minutes: float, seconds_per_epoch: dict[str, float], most: int) -> int:
    """The most epochs (at least 1, at most ``most``) for which every run together fits ``minutes``;
    every run gets the same number, so a comparison stays fair (same steps, same data)."""
    if not minutes > 0:
        raise ValueError(f"a time budget must be a positive number of minutes, got {minutes!r}")
    return max(1, min(most, int(minutes * 60 // sum(seconds_per_epoch.values()))))


def time_budget_minutes(explicit: float | None = None) -> float | None:
    """The experiment time budget: ``explicit`` if given, else ``$COURSE_TIME_BUDGET`` (minutes), else None.
    Either must be a number of minutes above 0 (a budget of 0, -5 or inf would choose no epochs, or all)."""
    if explicit is not None:
        value, source = explicit, "budget_minutes"
    else:
        value, source = os.environ.get("COURSE_TIME_BUDGET", "").strip(), "COURSE_TIME_BUDGET"
        if not value:
            return None
    try:
        minutes = float(value)
    except (TypeError, ValueError):
        minutes = math.nan
    if not 0 < minutes < math.inf:
        raise ValueError(f"{source}={value!r} is not a number of minutes above 0; set e.g. {source}=20"
                         + (", or unset it to run the mode's epochs" if source == "COURSE_TIME_BUDGET" else ""))
    return minutes


def format_minutes(seconds: float) -> str:
    """'2.5 min' from a minute on, '40 s' below."""
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
