"""Full mode without a GPU: every model and schedule of every experiment's full settings is built
and trained for two steps on a handful of real CIFAR-10 images, so a configuration error in full
mode (a wrong width, a schedule that cannot be built, a model name with a typo) fails here, on a
CPU, instead of minutes into a learner's GPU session."""

from dataclasses import replace

import pytest
import torch

from course_utils import experiments, runner, schedules
from course_utils.experiments import EXPERIMENTS, get_settings


def full_mode_runs():
    """(experiment, mode, run spec) for every run of every experiment in full and paper mode."""
    return [(name, mode, spec) for name in EXPERIMENTS for mode in ("full", "paper")
            for spec in experiments.run_specs(name, get_settings(name, mode))]


def test_every_full_mode_schedule_can_be_built():
    assert len(full_mode_runs()) >= 20
    for name, mode, spec in full_mode_runs():
        settings = spec.settings(get_settings(name, mode))
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=settings.lr)
        schedules.make_scheduler(optimizer, settings, steps_per_epoch=98)  # 50,000 / 512


def distinct_models():
    """One run per distinct network (name, width, initialisation): the rest differ only in schedule."""
    chosen = {}
    for name, mode, spec in full_mode_runs():
        settings = spec.settings(get_settings(name, mode))
        chosen.setdefault((spec.model, settings.width, settings.zero_init_residual), (name, mode, spec))
    return list(chosen.values())


@pytest.mark.parametrize("experiment, mode, spec", distinct_models(),
                         ids=lambda value: getattr(value, "label", value))
def test_each_full_mode_network_trains_two_steps_and_evaluates(experiment, mode, spec, tiny):
    # The full settings, with only the sizes cut: 20 images in batches of 10, one epoch, and no
    # torch.compile (a minute of compiling on a CPU; the GPU check runs it).
    settings = replace(get_settings(experiment, mode), epochs=1, batch_size=10, compile=False, time_budget=None)
    data = tiny.subset(20, 10)
    history = runner.train_run(spec, settings, data, device=torch.device("cpu"), progress=False)
    assert len(history.step_loss) == 2 and history.epochs_done == 1
    assert torch.isfinite(torch.tensor(history.step_loss)).all() and 0 <= history.val_acc[-1] <= 1
