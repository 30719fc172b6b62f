"""The course's named experiments: one registry entry each, run from a notebook or the command line.

    python -m course_utils list
    python -m course_utils run degradation --mode quick --out data/runs/degradation-quick

``EXPERIMENTS`` is the one place an experiment is defined: what it shows, its ``Settings`` in each
mode, and the runs it is made of. ``run_experiment`` trains those runs with the sizes of the active
mode and returns (and, given a folder, writes) one run record per run; ``describe`` and
``python -m course_utils list`` show the table. Why each setting has its value, measured over
seeds, is in benchmarks/README.md.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from course_utils import models
from course_utils.article import article_block_stack, article_scheduler
from course_utils.checkpoint import save_checkpoint
from course_utils.data import Cifar10, TensorLoader, load_cifar10
from course_utils.devices import choose_precision, describe_device, pick_device
from course_utils.distributed import is_distributed, is_main_process
from course_utils.estimates import (epoch_seconds, epochs_for_budget, format_minutes, measured_step_seconds,
                                    t4_step_seconds, time_budget_minutes)
from course_utils.history import History, plain_data
from course_utils.modes import GROUPS, MODES, SCHEDULES, Settings, check_setting, current_mode, format_settings
from course_utils.training import TimeBudget, check_folder_writable, evaluate, fit, seed_everything

# He et al. 2016, Table 6: CIFAR-10 test error (%) of the paper's ResNets, by depth, after 64,000
# steps of batch 128 on all 50,000 training images (Section 4.2).
PAPER_TEST_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}
PAPER_STEPS = 64_000


def comparable_with_the_paper(history: History) -> bool:
    """Whether a run trained long enough for its test error to sit beside Table 6: all 50,000 images
    and at least half the paper's steps. Full mode's 15 epochs of depth (5,865 steps) are not."""
    return history.config.get("train_images") == 50_000 and len(history.step_loss) >= PAPER_STEPS // 2


@dataclass(frozen=True)
class RunSpec:
    """One training run of an experiment: a label, a model name and a learning-rate schedule."""

    label: str
    model: str  # e.g. "plain-56", "resnet-20", "resnet18"
    schedule: str  # "constant", "step" (the article's StepLR), "multistep" (the paper's) or "one-cycle"
    changes: tuple[tuple[str, object], ...] = ()  # settings this run changes, e.g. (("nesterov", True),)

    def settings(self, settings: Settings) -> Settings:
        """The experiment's settings with this run's changes applied."""
        return replace(settings, **dict(self.changes))


def one_run_per_model(settings: Settings) -> list[RunSpec]:
    """One run per model name, each with the settings' schedule."""
    schedule = settings.schedule or ("multistep" if settings.lr_milestones else "constant")
    return [RunSpec(name, name, schedule) for name in settings.models]


def with_and_without_decay(settings: Settings) -> list[RunSpec]:
    """The article's comparison: the same model, data order and start, with and without StepLR."""
    return [spec for name in settings.models for spec in (
        RunSpec(f"{name} constant LR", name, "constant"),
        RunSpec(f"{name} StepLR", name, "step"),
    )]


# The ablation of notebook 08: each step keeps the previous ones and switches one more trick on.
# The switches whose worth depends on the hardware come last, so that one which slows a machine
# down (bf16 on a CPU without bf16 arithmetic halved the speed) does not slow every later row.
ABLATION: tuple[tuple[str, dict], ...] = (
    ("course default", {}),
    ("+ channels_last", {"channels_last": True}),
    ("+ one-cycle LR", {"schedule": "one-cycle", "warmup_fraction": 0.2}),
    ("+ label smoothing", {"label_smoothing": 0.1}),
    ("+ Nesterov", {"nesterov": True}),
    ("+ flip TTA", {"flip_tta": True}),
    ("+ cutout 16", {"cutout": 16}),
    ("+ bf16 autocast", {"amp": True}),
    ("+ torch.compile", {"compile": True}),  # only where the settings ask for it (the full mode)
)


def ablation_steps(settings: Settings) -> list[RunSpec]:
    """The rows of ``ABLATION``, each with every change so far, on the settings' first model."""
    specs, changes = [], {}
    for label, change in ABLATION:
        if "compile" in change and not settings.compile:
            continue  # compiling costs about a minute on a CPU: only where the mode asks for it
        changes = {**changes, **change}
        specs.append(RunSpec(label, settings.models[0], changes.get("schedule", "constant"),
                             tuple(changes.items())))
    return specs


@dataclass(frozen=True)
class Experiment:
    """One named experiment: what it shows, its settings per mode, and how its runs are built."""

    description: str
    settings: dict[str, Settings]  # by mode: smoke, quick, full, and paper where it has a schedule of its own
    runs: Callable[[Settings], list[RunSpec]] = one_run_per_model


# The paper's CIFAR recipe (Section 4.2): batch 128, SGD lr 0.1, momentum 0.9, weight decay 1e-4,
# LR divided by 10 at 32k and 48k of 64k iterations (= 50% and 75%), 164 epochs of 50k images.
# Full mode keeps all of it but the length (the milestones are fractions of the run).
_PAPER_CIFAR = dict(batch_size=128, lr=0.1, momentum=0.9, weight_decay=1e-4, lr_milestones=(0.5, 0.75))
_DEGRADATION = ("plain-20", "plain-56", "resnet-20", "resnet-56")
_DEPTH_SERIES = ("plain-20", "plain-32", "plain-44", "plain-56", "resnet-20", "resnet-32", "resnet-44", "resnet-56")
# The fast recipe's switches: one-cycle LR (warm-up 20% of the steps), Nesterov, label smoothing
# 0.1, test-time flip, and the NHWC layout (measured faster on a 2-core CPU too).
_FAST = dict(schedule="one-cycle", warmup_fraction=0.2, nesterov=True, label_smoothing=0.1, flip_tta=True,
             channels_last=True, weight_decay=5e-4)

# Quick-mode sizes are measured choices: each shows its notebook's effect for every one of 5 seeds
# on 2 CPU cores within the notebook's 5 minutes (benchmarks/README.md, "Lessons over seeds", and
# "How the settings were chosen" for the runs that ruled the alternatives out).
EXPERIMENTS: dict[str, Experiment] = {
    "degradation": Experiment(
        "plain vs residual networks of depth 20 and 56, same data and schedule (notebook 01)",
        {"smoke": Settings(train_size=128, test_size=100, epochs=1, batch_size=64, lr=0.1, zero_init_residual=True,
                           models=_DEGRADATION),
         # Zero-initialised residual blocks: a default-initialised ResNet-56 diverged at lr 0.1 this short.
         "quick": Settings(train_size=2048, test_size=500, epochs=3, batch_size=64, lr=0.1, zero_init_residual=True,
                           models=_DEGRADATION),
         "full": Settings(train_size=None, test_size=None, epochs=30, models=_DEGRADATION, **_PAPER_CIFAR),
         "paper": Settings(train_size=None, test_size=None, epochs=164, models=_DEGRADATION, **_PAPER_CIFAR)}),
    "shortcuts": Experiment(
        "ResNet-20 with option-A shortcuts (zero padding) against option B (projections), same data and start "
        "(notebook 03)",
        {"smoke": Settings(train_size=128, test_size=100, epochs=1, batch_size=64, lr=0.1, zero_init_residual=True,
                           models=("resnet-20", "resnet-20-B")),
         "quick": Settings(train_size=2048, test_size=500, epochs=3, batch_size=64, lr=0.1, zero_init_residual=True,
                           models=("resnet-20", "resnet-20-B")),
         "full": Settings(train_size=None, test_size=None, epochs=30, models=("resnet-20", "resnet-20-B"), **_PAPER_CIFAR),
         "paper": Settings(train_size=None, test_size=None, epochs=164, models=("resnet-20", "resnet-20-B"),
                           **_PAPER_CIFAR)}),
    "gradients": Experiment(
        "gradient norms per layer of a plain and a residual 56-layer network, default initialisation "
        "(notebook 01, part 1)",
        # lr 0.02: the lesson is about the default initialisation, at which lr 0.1 blew a ResNet-56 up.
        {"smoke": Settings(train_size=128, test_size=None, epochs=1, batch_size=64, lr=0.02,
                           models=("plain-56", "resnet-56")),
         "quick": Settings(train_size=640, test_size=None, epochs=1, batch_size=128, lr=0.02,
                           models=("plain-56", "resnet-56")),
         "full": Settings(train_size=1280, test_size=None, epochs=1, batch_size=128, lr=0.02,
                          models=("plain-56", "resnet-56"))}),
    "block-defects": Experiment(
        "the article's residual block (shared weights, ReLU before the addition) vs the paper's, "
        "3 blocks each in the same small network (notebook 02)",
        {"smoke": Settings(train_size=128, test_size=100, epochs=1, batch_size=64, lr=0.05, width=16,
                           models=("article-blocks-3", "paper-blocks-3")),
         "quick": Settings(train_size=2048, test_size=1000, epochs=4, batch_size=128, lr=0.05, width=16,
                           models=("article-blocks-3", "paper-blocks-3")),
         "full": Settings(train_size=None, test_size=None, epochs=15, batch_size=128, lr=0.05, width=16,
                          models=("article-blocks-3", "paper-blocks-3"))}),
    "lr-decay": Experiment(
        "ResNet18 with a constant learning rate vs the article's StepLR decay (notebook 05)",
        # lr_milestones: where StepLR divides the LR, as fractions of the run (the article's 10 of 30
        # epochs). Quick: a small subset seen for many epochs, so the constant run plateaus before the decay.
        {"smoke": Settings(train_size=128, test_size=100, epochs=2, batch_size=64, lr=0.05,
                           weight_decay=5e-4, lr_milestones=(0.5,), width=8, models=("resnet18",)),
         "quick": Settings(train_size=1280, test_size=1000, epochs=20, batch_size=128, lr=0.1,
                           weight_decay=5e-4, lr_milestones=(0.75,), width=16, models=("resnet18",)),
         "full": Settings(train_size=None, test_size=None, epochs=24, batch_size=128, lr=0.05,
                          weight_decay=5e-4, lr_milestones=(1 / 3, 2 / 3), width=64, models=("resnet18",)),
         "paper": Settings(train_size=None, test_size=None, epochs=30, batch_size=128, lr=0.05,
                           weight_decay=5e-4, lr_milestones=(1 / 3, 2 / 3), width=64, models=("resnet18",))},
        runs=with_and_without_decay),
    "save-load": Experiment(
        "one ResNet18 to save, load, test and resume, constant learning rate (notebook 06)",
        {"smoke": Settings(train_size=128, test_size=100, epochs=1, batch_size=64, lr=0.05,
                           weight_decay=5e-4, width=8, models=("resnet18",)),
         "quick": Settings(train_size=2048, test_size=1000, epochs=3, batch_size=128, lr=0.05,
                           weight_decay=5e-4, width=16, models=("resnet18",)),
         "full": Settings(train_size=None, test_size=None, epochs=15, batch_size=128, lr=0.05,
                          weight_decay=5e-4, width=64, models=("resnet18",))}),
    "depth": Experiment(
        "test error against depth: plain and residual 20-56 layers (paper mode: also 110 and "
        "ResNet18/34/50) (notebook 07)",
        {"smoke": Settings(train_size=128, test_size=100, epochs=1, batch_size=64, lr=0.1, width=8,
                           zero_init_residual=True, models=("plain-20", "resnet-20", "resnet18")),
         "quick": Settings(train_size=1024, test_size=500, epochs=3, batch_size=64, lr=0.1, width=16,
                           zero_init_residual=True, models=_DEPTH_SERIES),
         # The 110-layer pair and ResNet18/34/50 alone would need over an hour on a T4 for a few epochs.
         "full": Settings(train_size=None, test_size=None, epochs=15, width=64, models=_DEPTH_SERIES, **_PAPER_CIFAR),
         "paper": Settings(train_size=None, test_size=None, epochs=164, width=64,
                           models=(*_DEPTH_SERIES[:4], "plain-110", *_DEPTH_SERIES[4:], "resnet-110",
                                   "resnet18", "resnet34", "resnet50"), **_PAPER_CIFAR)}),
    "fast-ablation": Experiment(
        "the fast recipe's tricks switched on one at a time, ResNet18 (notebook 08)",
        # The base is the course's default recipe (SGD + momentum, constant LR, fp32, NCHW). Only full
        # mode times torch.compile: compiling ResNet18-w16 took 54 s on 2 CPU cores, longer than a quick run.
        # Quick: one epoch, so that notebook 08 fits 5 minutes on 2 cores (bf16 alone is 10x slower there).
        {"smoke": Settings(train_size=128, test_size=100, epochs=1, batch_size=64, lr=0.05, weight_decay=5e-4,
                           width=8, models=("resnet18",)),
         "quick": Settings(train_size=2560, test_size=1000, epochs=1, batch_size=128, lr=0.05, weight_decay=5e-4,
                           width=16, models=("resnet18",)),
         "full": Settings(train_size=None, test_size=None, epochs=6, batch_size=512, lr=0.2, weight_decay=5e-4,
                          width=64, compile=True, models=("resnet18",))},
        runs=ablation_steps),
    "fast": Experiment(
        "ResNet18 with the whole fast recipe (benchmarks/fast_resnet18.py, notebook 08)",
        # Full: the ingredients of airbench's ResNet18 baseline (KellerJordan/cifar10-zoo, 94.0% with
        # flip TTA over 200 runs, 51 s on an A100): 26 epochs of batch 500 (100 equal steps, so the
        # compiled step never meets a smaller last batch), peak LR 0.2, Cutout 12, no label smoothing;
        # bf16, and the step compiled into CUDA graphs. The course's earlier full recipe (16 epochs,
        # batch 512, LR 0.4, smoothing 0.1, no Cutout) reached 89.78% (data/results/gpu-check).
        {"smoke": Settings(train_size=256, test_size=100, epochs=1, batch_size=64, lr=0.1, width=8,
                           models=("resnet18",), **_FAST),
         "quick": Settings(train_size=5000, test_size=1000, epochs=2, batch_size=128, lr=0.1, width=16,
                           models=("resnet18",), **_FAST),
         "full": Settings(train_size=None, test_size=None, epochs=26, batch_size=500, lr=0.2, width=64, amp=True,
                          compile="reduce-overhead", models=("resnet18",),
                          **{**_FAST, "label_smoothing": 0.0, "cutout": 12})}),
    "laptop": Experiment(
        "a ResNet-9 (DAWNBench layout) at width 16 on all of CIFAR-10 within 15 minutes on 2 CPU cores "
        "(notebook 08)",
        # 14 minutes of training: the one-cycle LR follows the clock, so every run ends on time on a
        # fast or a slow machine (epochs=30 is only a cap). The per-epoch test uses 1,000 images (a
        # second each); all 10,000 are tested once at the end, within the 15 minutes.
        {"smoke": Settings(train_size=256, test_size=100, epochs=1, batch_size=64, lr=0.1, width=8,
                           val_size=50, models=("resnet9",), **_FAST),
         "quick": Settings(train_size=None, test_size=None, epochs=30, batch_size=128, lr=0.1, width=16,
                           time_budget=14 * 60, val_size=1000, models=("resnet9",), **_FAST),
         "full": Settings(train_size=None, test_size=None, epochs=30, batch_size=128, lr=0.1, width=16,
                          time_budget=14 * 60, val_size=1000, models=("resnet9",), **_FAST)}),
}


def get_settings(experiment: str, mode: str | None = None) -> Settings:
    """The settings of ``experiment`` in ``mode`` (default: the active mode)."""
    entry = _entry(experiment)
    mode = current_mode() if mode is None else mode
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    return entry.settings.get(mode, entry.settings["full"])  # no paper schedule of its own: paper runs full


def run_specs(experiment: str, settings: Settings) -> list[RunSpec]:
    """The runs ``experiment`` is made of, with ``settings``."""
    return _entry(experiment).runs(settings)


def _entry(experiment: str) -> Experiment:
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; choose one of {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[experiment]


def describe(experiment: str | Sequence[str] | None = None, mode: str | None = None) -> None:
    """Print the active mode, the device and what the mode implies for ``experiment``: one name, a
    list of names (``[]`` for a notebook that trains nothing), or every experiment (None)."""
    mode = current_mode() if mode is None else mode
    source = "from COURSE_MODE" if os.environ.get("COURSE_MODE") else "default for this machine"
    print(f"mode: {mode} ({source}; valid: {', '.join(MODES)})")
    device = pick_device(verbose=False)
    print(f"device: {describe_device(device)}, training precision {choose_precision(device)}")
    names = list(EXPERIMENTS) if experiment is None else [experiment] if isinstance(experiment, str) else experiment
    for name in names:
        settings = get_settings(name, mode)
        print(f"{name}: {format_settings(settings)}")
        if mode in ("full", "paper"):
            print(f"  estimate on a T4 (an assumption, see course_utils/estimates.py): "
                  f"{t4_experiment_seconds(name, settings) / 60:.1f} min")
    budget = time_budget_minutes()
    print("time: each experiment prints its expected duration on this device before it trains"
          + (f"; COURSE_TIME_BUDGET={budget:g} min chooses its epochs" if budget is not None else ""))


def build_named_model(name: str, width: int | None = None, zero_init_residual: bool = False) -> nn.Module:
    """``"plain-56"`` -> ``plain_net(56)``, ``"resnet-20"`` -> ``cifar_resnet(20)`` (option-A shortcuts;
    ``"resnet-20-B"``: option B, a 1x1 projection and BatchNorm where the shape changes),
    ``"resnet18"`` -> ``resnet18(stem="cifar", width=width or 64)`` (likewise 34 and 50),
    ``"resnet9"`` -> ``resnet9(width=width or 16)`` (the laptop recipe's network),
    ``"article-blocks-3"`` / ``"paper-blocks-3"`` -> a stem, 3 of the article's / the paper's
    residual blocks of ``width`` channels (16 by default), pooling and a classifier.

    ``zero_init_residual`` applies to the residual networks only: a plain block whose last
    BatchNorm scale is zero would output zeros, not its input.
    """
    match = re.fullmatch(r"(plain|resnet)-(\d+)(-B)?", name)
    if match and not (match.group(1) == "plain" and match.group(3)):
        family, depth = match.group(1), int(match.group(2))
        if family == "plain":
            return models.plain_net(depth)
        shortcut = "B" if match.group(3) else "A"  # "resnet-20-B": projection shortcuts where shapes change
        return models.cifar_resnet(depth, shortcut=shortcut, zero_init_residual=zero_init_residual)
    if name == "resnet9":
        return models.resnet9(width=width or 16, zero_init_residual=zero_init_residual)
    if name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
        return models.build_model(name, stem="cifar", width=width or 64, zero_init_residual=zero_init_residual)
    match = re.fullmatch(r"(article|paper)-blocks-(\d+)", name)
    if match:  # notebook 02: N blocks of the article's design or of the paper's, same stem and head
        blocks = int(match.group(2))
        if match.group(1) == "article":
            return article_block_stack(num_blocks=blocks, width=width or 16)
        return models.ResNet(models.BasicBlock, [blocks], stem="cifar", width=width or 16)
    raise ValueError(f"unknown model name {name!r}; use 'plain-D' or 'resnet-D' (D = 6n + 2, "
                     f"e.g. 20, 56; 'resnet-D-B' for option-B shortcuts), resnet9, resnet18 / 34 / 50 / 101 / 152, or article-blocks-N / paper-blocks-N")


def build_model_for(spec: RunSpec, settings: Settings, seed: int = 0) -> nn.Module:
    """The freshly initialised model of a run: seeded, so equal architectures start equal."""
    settings = spec.settings(settings)
    seed_everything(seed)
    return build_named_model(spec.model, settings.width, settings.zero_init_residual)


def make_scheduler(optimizer: torch.optim.Optimizer, settings: Settings, schedule: str,
                   steps_per_epoch: int | None = None, budget: TimeBudget | None = None):
    """The learning-rate schedule of a run (None for a constant LR).

    ``step``: the article's ``StepLR(step_size, gamma=0.1)`` (``article.article_scheduler``) with
    its step of 10 epochs (of 30) scaled to the run's length. ``multistep``: the paper's division by 10 at the given fractions.
    Both are stepped once per epoch. ``one-cycle``: ``one_cycle_factor`` times the LR, stepped
    once per optimiser step (``schedule_interval``), so it needs ``steps_per_epoch``. Its progress
    is the share of the ``settings.epochs`` steps done or, with a ``budget`` (the same one given
    to ``fit(time_limit=...)``), the share of the time spent, whichever is further along.
    """
    if schedule not in SCHEDULES:  # before any shortcut below: "cosine" must not train at a constant LR
        raise ValueError(f"unknown schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")
    if schedule == "one-cycle":
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
    milestones = sorted({max(1, round(fraction * settings.epochs)) for fraction in settings.lr_milestones})
    if schedule == "constant" or not milestones:
        return None
    if schedule == "step":
        return article_scheduler(optimizer, step_size=milestones[0])
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)  # "multistep"


def schedule_interval(schedule: str) -> str:
    """How often ``fit`` steps the scheduler of ``schedule``: "step" (one-cycle) or "epoch"."""
    return "step" if schedule == "one-cycle" else "epoch"


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


def estimate_epoch_seconds(experiment: str, settings: Settings, *, device: torch.device | str | None = None,
                           data: Cifar10 | None = None, seed: int = 0,
                           specs: list[RunSpec] | None = None) -> dict[str, float]:
    """Seconds per epoch of each run of ``experiment`` with ``settings``: ``{label: seconds}``.

    ``device="t4"``: by the T4 assumption of ``course_utils.estimates`` (no data needed). Otherwise
    measured on that device: a few timed training steps of each run's model on ``data`` (which
    must already be the experiment's subset). torch.compile's compilation is not included.
    ``specs``: only these runs (default: all of the experiment's).
    """
    train_images = len(data.train_images) if data is not None else (settings.train_size or 50_000)
    test_images = len(data.test_images) if data is not None else (settings.test_size or 10_000)
    test_images = min(test_images, settings.val_size or test_images)  # tested after each epoch
    estimates = {}
    for spec in specs if specs is not None else run_specs(experiment, settings):
        run_settings = spec.settings(settings)
        if device == "t4":
            step = _t4_step_seconds(spec.model, run_settings.width, run_settings.batch_size)
        else:
            if data is None:
                raise ValueError("measuring on a device needs the data (the experiment's subset)")
            model = build_model_for(spec, settings, seed)
            step = measured_step_seconds(model, run_settings, data, torch.device(device))
        estimates[spec.label] = epoch_seconds(step, run_settings, train_images, test_images)
    return estimates


@functools.lru_cache(maxsize=None)
def _t4_step_seconds(model: str, width: int | None, batch_size: int) -> float:
    """``estimates.t4_step_seconds`` of a named model, once per process: counting its MACs runs it."""
    return t4_step_seconds(build_named_model(model, width), batch_size)


def t4_experiment_seconds(experiment: str, settings: Settings) -> float:
    """Estimated seconds of all runs of ``experiment`` on a T4 (a run with a time budget stops at it)."""
    per_epoch = estimate_epoch_seconds(experiment, settings, device="t4").values()
    return sum(min(settings.epochs * seconds, settings.time_budget or math.inf) for seconds in per_epoch)


def run_experiment(
    experiment: str,
    *,
    out_dir: str | os.PathLike | None = None,
    data: Cifar10 | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    only: list[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    command: str | None = None,
    keep_models: dict[str, nn.Module] | None = None,
    overrides: dict | None = None,
    save_models: bool = False,
    budget_minutes: float | None = None,
    mode: str | None = None,
) -> dict[str, History]:
    """Train every run of ``experiment`` in ``mode`` (default: the active mode, ``modes.current_mode``);
    return ``{label: History}``.

    Every run starts from the same seed, so runs of the same architecture share their initial
    weights, and all runs see the same data in the same order. With ``out_dir``, each run record
    is written there as ``<experiment>__<label>.json``; existing records are never replaced
    unless ``overwrite=True``. ``only`` restricts the runs to the given labels. Pass a dict as
    ``keep_models`` to get the trained models too (label -> model), e.g. to look inside them.
    ``overrides`` changes settings of the mode for this call, e.g. ``{"epochs": 1}``; the records
    store them under ``config["overrides"]``. ``save_models=True`` also writes each trained model
    as a checkpoint ``<experiment>__<label>.pt`` beside its record (with its History), for analyses
    that need trained weights; it needs ``out_dir``.

    Before training it prints each run's expected duration on this device (a few timed steps per
    run). ``budget_minutes`` (default: ``$COURSE_TIME_BUDGET``) chooses the number of epochs from
    that estimate so that all runs fit, the same for every run (at most the mode's); the records
    store the choice under ``config["time_budget_choice"]``.
    """
    mode = current_mode() if mode is None else mode
    overrides = checked_overrides(overrides)  # "--set nesterov=false" is False here, and in the record
    budget = time_budget_minutes(budget_minutes)  # COURSE_TIME_BUDGET=-5: refused now, by name, not after the data
    settings = apply_overrides(get_settings(experiment, mode), overrides)
    specs = _select_runs(experiment, run_specs(experiment, settings), only)
    _check_schedule_applies(experiment, specs, overrides)
    paths = record_paths(experiment, specs, out_dir, save_models, overwrite)
    _check_neighbours(experiment, out_dir, specs, seed, mode, overrides)
    is_main = is_main_process()  # under torchrun, only process 0 prints and writes records
    # Claim the record files first: a second run started into the same folder stops here, before it trains.
    with _claimed(paths.values() if is_main else ()):
        device = torch.device(device) if device is not None else pick_device(verbose=is_main)
        data = (data if data is not None else load_cifar10()).subset(settings.train_size, settings.test_size, seed)
        estimates = estimate_epoch_seconds(experiment, settings, device=device, data=data, seed=seed, specs=specs)
        choice = _budget_choice(budget, estimates, settings.epochs)
        if choice is not None:
            settings = replace(settings, epochs=choice["epochs"])
        if is_main:
            _print_plan(experiment, mode, settings, estimates, device, choice)
        runs = {}
        for spec in specs:
            if is_main:
                print(f"--- {spec.label} ---")
            model = build_model_for(spec, settings, seed)
            history = train_run(spec, settings, data, device=device, seed=seed, progress=progress, model=model)
            if history.interrupted:  # Ctrl-C stops the whole experiment: no next run, no record of this one
                if is_main:
                    print(f"Interrupted during {spec.label}: {experiment} stopped; the records of its "
                          f"{len(runs)} complete run(s) are kept" + (f" in {out_dir}" if out_dir else "") + ".")
                raise KeyboardInterrupt
            if keep_models is not None:
                keep_models[spec.label] = model
            history.meta["mode"] = mode
            history.config.update(experiment=experiment, run=spec.label, command=command, overrides=overrides or {},
                                  estimated_epoch_seconds=round(estimates[spec.label], 3), time_budget_choice=choice)
            if spec.label in paths and is_main:
                history.save_json(paths[spec.label])
                if save_models:
                    save_checkpoint(paths[spec.label].with_suffix(".pt"), model, history=history,
                                    epoch=history.epochs_done)
            runs[spec.label] = history
        return runs


def checked_overrides(overrides: dict | None) -> dict:
    """``overrides`` with every value as its setting takes it (``modes.check_setting``): a wrong name,
    type or range is a ValueError naming the setting and what it takes, before any data is loaded."""
    return {key: check_setting(key, value) for key, value in (overrides or {}).items()}


def apply_overrides(settings: Settings, overrides: dict | None) -> Settings:
    """``settings`` with some fields changed, e.g. ``{"epochs": 4, "models": "resnet9"}`` (checked
    and converted by ``checked_overrides``: a string or a single value for a tuple field becomes a tuple)."""
    return replace(settings, **checked_overrides(overrides)) if overrides else settings


def planned_runs(experiment: str, mode: str, overrides: dict | None = None,
                 only: list[str] | None = None) -> list[RunSpec]:
    """The runs ``run_experiment`` would train with these arguments (checked as it checks them)."""
    settings = apply_overrides(get_settings(experiment, mode), overrides)
    specs = _select_runs(experiment, run_specs(experiment, settings), only)
    _check_schedule_applies(experiment, specs, checked_overrides(overrides))
    return specs


def _check_schedule_applies(experiment: str, specs: list[RunSpec], overrides: dict) -> None:
    """``--set schedule=...`` must be the schedule every run trains with: experiments whose runs set their
    own (lr-decay compares two, the ablation switches one on) would ignore it and still record it."""
    if "schedule" not in overrides:
        return
    own = sorted({spec.schedule for spec in specs if spec.schedule != overrides["schedule"]})
    if overrides["schedule"] is not None and own:
        raise ValueError(f"schedule={overrides['schedule']!r} does not apply to {experiment}: its runs set their own "
                         f"schedules ({', '.join(f'{spec.label}: {spec.schedule}' for spec in specs)}). Leave "
                         f"schedule unset for {experiment}")


def _select_runs(experiment: str, specs: list[RunSpec], only: list[str] | None) -> list[RunSpec]:
    if only is None:
        return specs
    unknown = sorted(set(only) - {spec.label for spec in specs})
    if unknown:
        raise ValueError(f"{experiment} has no run(s) {unknown}; its runs: {[spec.label for spec in specs]}")
    return [spec for spec in specs if spec.label in only]


def record_paths(experiment: str, specs: list[RunSpec], out_dir, save_models: bool,
                 overwrite: bool) -> dict[str, Path]:
    """Where each run's record goes; checked before any training, not after the first run (a
    FileExistsError if a record is there and ``overwrite`` is False)."""
    if save_models and out_dir is None:
        raise ValueError("save_models=True needs an out_dir (--out) to write the checkpoints to")
    if out_dir is None:
        return {}
    _check_output_folder(Path(out_dir))
    paths = {spec.label: Path(out_dir) / f"{experiment}__{slug(spec.label)}.json" for spec in specs}
    written = [*paths.values(), *(path.with_suffix(".pt") for path in paths.values() if save_models)]
    existing = [str(path) for path in written if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"run records already exist ({', '.join(existing)}); choose another "
                              f"output folder, or pass overwrite=True (--overwrite) to replace them")
    return paths


def _check_neighbours(experiment: str, out_dir, specs: list[RunSpec], seed: int, mode: str, overrides: dict) -> None:
    """Records of the experiment's other runs already in ``out_dir`` must be of this call's seed, mode and
    settings (speed switches aside: they change how fast, not what is computed). Otherwise a folder
    would hold, unannounced, runs that cannot be compared with each other (``--only`` after another seed)."""
    if out_dir is None:
        return
    labels = {spec.label for spec in specs}
    ours = {"seed": seed, "mode": mode, "settings": _compared_settings(overrides)}
    for path in sorted(Path(out_dir).glob(f"{experiment}__*.json")):
        try:
            history = History.load_json(path)
        except ValueError:
            continue  # not a record this code reads: it compares with nothing
        if history.config.get("run") in labels:
            continue  # this call replaces it (overwrite=True; refused before this otherwise)
        theirs = {"seed": history.config.get("seed"), "mode": history.meta.get("mode"),
                  "settings": _compared_settings(history.config.get("overrides") or {})}
        differ = [f"{key} {theirs[key]!r} there, {ours[key]!r} here" for key in ours
                  if theirs[key] is not None and theirs[key] != ours[key]]  # None: an older record says nothing
        if differ:
            raise ValueError(f"{out_dir} holds {path.name}, another run of {experiment} with other settings "
                             f"({'; '.join(differ)}): runs of different seeds or settings in one folder cannot be "
                             f"compared. Choose another output folder, or run with the same seed and settings.")


def _compared_settings(overrides: dict) -> dict:
    speed = set(GROUPS["speed"])
    return {key: value for key, value in plain_data(overrides).items() if key not in speed}


@contextlib.contextmanager
def _claimed(paths):
    """Hold a lock file beside each record path (``.NAME.lock``, created only if absent) while the runs
    train, so that two runs started at once into one folder cannot both pass the check for existing
    records and then replace each other's."""
    locks = []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = path.with_name(f".{path.name}.lock")
            try:
                descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                raise FileExistsError(f"another run is writing {path} (it holds {lock}): wait for it to finish, "
                                      f"choose another output folder, or delete {lock} if no run is "
                                      f"writing there any more") from None
            os.write(descriptor, f"{os.getpid()}\n".encode())
            os.close(descriptor)
            locks.append(lock)
        yield
    finally:
        for lock in locks:
            lock.unlink(missing_ok=True)


def _budget_choice(budget: float | None, estimates: dict[str, float], mode_epochs: int) -> dict | None:
    """The epochs a time budget allows (None without a budget), and why, for the records."""
    if budget is None:
        return None
    if is_distributed():
        raise ValueError("a time budget is not supported under torchrun (each process would measure its own "
                         "estimate); choose the epochs with --set epochs=N instead")
    epochs = epochs_for_budget(budget, estimates, mode_epochs)
    per_epoch = sum(estimates.values())
    return {"budget_minutes": budget, "mode_epochs": mode_epochs, "epochs": epochs,
            "estimated_minutes": round(epochs * per_epoch / 60, 2),
            "why": f"{epochs} epoch(s) of every run fit the {budget:g}-minute budget by the estimate "
                   f"of {per_epoch:.1f} s per epoch of all runs (mode: {mode_epochs} epochs)"}


def _print_plan(experiment: str, mode: str, settings: Settings, estimates: dict[str, float],
                device: torch.device, choice: dict | None) -> None:
    print(f"{experiment} in {mode} mode: {format_settings(settings)}")
    # A run with a time budget of its own (the laptop recipe) stops when that is spent.
    expected = {label: min(settings.epochs * seconds, settings.time_budget or math.inf)
                for label, seconds in estimates.items()}
    print(f"expected on {device.type} (a few timed steps per run"
          + ("; plus compilation" if settings.compile else "") + "): "
          + ", ".join(f"{label} {format_minutes(seconds)}" for label, seconds in expected.items())
          + f"; all {format_minutes(sum(expected.values()))}")
    if choice:
        print(f"time budget: {choice['why']}")

def _check_output_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"the output folder {folder} is a file; choose a folder for the run records")
    check_folder_writable(folder, f"run records to {folder}")


def train_run(spec: RunSpec, settings: Settings, data: Cifar10, *, device: torch.device, seed: int = 0,
              progress: bool = True, model: nn.Module | None = None) -> History:
    """Train one run of an experiment: SGD with momentum and weight decay, cross-entropy loss,
    and whichever fast-training options ``settings`` (with the run's changes) switch on.

    ``model``: the network to train (default: ``build_model_for(spec, settings, seed)``).
    """
    if model is None:
        model = build_model_for(spec, settings, seed)
    settings = spec.settings(settings)
    seed_everything(seed)  # the same random state for every run, whoever built the model
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                                weight_decay=settings.weight_decay, nesterov=settings.nesterov)
    train_loader = TensorLoader(data.train_images, data.train_labels, batch_size=settings.batch_size,
                                device=device, seed=seed, cutout=settings.cutout)
    test_loader = TensorLoader(data.test_images, data.test_labels, batch_size=500, augment=False,
                               shuffle=False, device=device)
    sample_val = settings.val_size is not None and settings.val_size < len(data.test_labels)
    # The per-epoch sample is the same for every seed (seed 0), so curves of different runs compare.
    val_data = data.subset(None, settings.val_size, seed=0) if sample_val else data
    val_loader = TensorLoader(val_data.test_images, val_data.test_labels, batch_size=500, augment=False,
                              shuffle=False, device=device) if sample_val else test_loader
    budget = TimeBudget(settings.time_budget) if settings.time_budget else None
    scheduler = make_scheduler(optimizer, settings, spec.schedule, steps_per_epoch=len(train_loader), budget=budget)
    history = fit(model, train_loader, epochs=settings.epochs, optimizer=optimizer, scheduler=scheduler,
                  scheduler_interval=schedule_interval(spec.schedule), val_loader=val_loader, device=device,
                  speed=settings.speed, time_limit=budget, flip_tta=settings.flip_tta,
                  loss_fn=nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing), progress=progress,
                  config={"model_name": spec.model, "schedule": spec.schedule, "seed": seed,
                          "test_images": len(data.test_images), "label_smoothing": settings.label_smoothing,
                          "warmup_fraction": settings.warmup_fraction, "time_budget": settings.time_budget,
                          "val_images": len(val_data.test_labels)})
    if sample_val and not history.interrupted:
        started = time.perf_counter()
        final = evaluate(model, test_loader, device=device, speed=settings.speed, flip_tta=settings.flip_tta)
        history.meta["final_test"] = {"images": len(data.test_labels), "accuracy": final.accuracy,
                                      "loss": final.loss, "flip_tta": settings.flip_tta,
                                      "seconds": round(time.perf_counter() - started, 2)}
    return history


def load_runs(folder: str | os.PathLike, experiment: str | None = None, *, missing_ok: bool = False) -> dict[str, History]:
    """Run records in ``folder`` (e.g. ``data/results``); {} if none. With ``experiment``, that
    experiment's records as ``{run label: History}``; without, every record as ``{file name without
    .json: History}`` (``"fast__resnet18"``), since experiments share run labels (``resnet18``).

    A folder that does not exist is a FileNotFoundError (a misspelt name must not read as "no runs"),
    unless ``missing_ok=True``: for reference folders that the course fills only on some machines."""
    folder = Path(folder).expanduser()
    _check_records_folder(folder, missing_ok)
    pattern = f"{experiment}__*.json" if experiment else "*.json"
    runs, files = {}, {}
    for path in sorted(Path(folder).glob(pattern)):
        history = History.load_json(path)
        key = history.config.get("run", path.stem) if experiment else path.stem
        if key in runs:  # never let one record silently replace another
            raise ValueError(f"{path} and {files[key]} are both records of the run {key!r}; move one of them "
                             f"to another folder")
        runs[key], files[key] = history, path
    return runs


def load_seed_runs(folder: str | os.PathLike, experiment: str, *, missing_ok: bool = False) -> dict[int, History]:
    """Records of one experiment repeated over seeds, one sub-folder each (``folder/seed-N/``, as
    the benchmarks write them), as ``{seed: History}``; {} if there are none. ``missing_ok``: as in
    ``load_runs``."""
    folder = Path(folder).expanduser()
    _check_records_folder(folder, missing_ok)
    runs = {}
    for seed_folder in sorted(folder.glob("seed-*")):
        for history in load_runs(seed_folder, experiment).values():
            runs[history.config.get("seed", seed_folder.name)] = history
    return dict(sorted(runs.items()))


def _check_records_folder(folder: Path, missing_ok: bool) -> None:
    if folder.is_dir() or (missing_ok and not folder.exists()):
        return
    if folder.exists():
        raise NotADirectoryError(f"{folder} is a file, not a folder of run records")
    siblings = sorted(path.name for path in folder.parent.iterdir() if path.is_dir()) if folder.parent.is_dir() else []
    raise FileNotFoundError(f"no folder {folder}" + (f"; {folder.parent} holds: {', '.join(siblings[:20])}"
                                                     if siblings else "") + " (check the name)")


def slug(label: str) -> str:
    """A file-name-safe version of a run label: 'resnet18 StepLR' -> 'resnet18-steplr'."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


