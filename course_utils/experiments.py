"""The course's named experiments: one registry entry each, run from a notebook or the command line.

    python -m course_utils list
    python -m course_utils run degradation --mode quick --out data/runs/degradation-quick

``EXPERIMENTS`` is the one place an experiment is defined: what it shows, its ``Settings`` in each
mode, and the runs it is made of (``modes.RunSpec``). ``runner.run_experiment`` trains those runs;
``describe`` (in a notebook) and ``python -m course_utils list`` show them, both through
``settings_lines``. Why each setting has its value, measured over seeds, is in benchmarks/README.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from course_utils.devices import choose_precision, describe_device, pick_device
from course_utils.estimates import format_minutes, t4_seconds, time_budget_minutes
from course_utils.history import History
from course_utils.modes import MODES, RunSpec, Settings, current_mode, format_settings

# He et al. 2016, Table 6: CIFAR-10 test error (%) of the paper's ResNets, by depth, after 64,000
# steps of batch 128 on all 50,000 training images (Section 4.2).
PAPER_TEST_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}
PAPER_STEPS = 64_000


def comparable_with_the_paper(history: History) -> bool:
    """Whether a run trained long enough for its test error to sit beside Table 6: all 50,000 images
    and at least half the paper's steps. Full mode's 15 epochs of depth (5,865 steps) are not."""
    return history.config.get("train_images") == 50_000 and len(history.step_loss) >= PAPER_STEPS // 2


def one_run_per_model(settings: Settings) -> list[RunSpec]:
    """One run per model name, each with the experiment's settings as they are."""
    return [RunSpec(name, name) for name in settings.models]


def with_and_without_decay(settings: Settings) -> list[RunSpec]:
    """The article's comparison: the same model, data order and start, with and without StepLR."""
    return [spec for name in settings.models for spec in (
        RunSpec(f"{name} constant LR", name, (("schedule", "constant"),)),
        RunSpec(f"{name} StepLR", name, (("schedule", "step"),)),
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
        specs.append(RunSpec(label, settings.models[0], tuple(changes.items())))
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
# The laptop recipe (peak LR 0.2, chosen over 0.1 and 0.4) tests its final weights in more views: in
# the same runs, one-pixel shifts added 0.1-0.6 points to the flip's (benchmarks/README.md, "What each
# choice bought").
# Its precision is the CPU's native one: bf16 where the CPU has bf16 matrix units (Intel AMX), where
# it trained ResNet-9 1.8x as fast as fp32; fp32 elsewhere, where bf16 ran at half fp32's speed.
_LAPTOP = dict(_FAST, translate_tta=True, amp="native")
_LAPTOP_SMOKE = Settings(train_size=256, test_size=100, epochs=1, batch_size=64, lr=0.2, width=8, val_size=50,
                         models=("resnet9",), **_LAPTOP)
_LAPTOP_QUICK = Settings(train_size=None, test_size=None, epochs=30, batch_size=128, lr=0.2, width=16,
                         time_budget=810, val_size=1000, models=("resnet9",), **_LAPTOP)  # quick and full alike
# The hour: the same recipe at width 24 for 55 minutes of training (epochs only a cap, see laptop-hour).
_LAPTOP_HOUR = replace(_LAPTOP_QUICK, width=24, time_budget=3300, epochs=100)

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
        # epochs). Quick: a small subset seen for many epochs, so the constant run plateaus before the decay;
        # 1,000 test images after each epoch, all 10,000 once at the end (about 5 s): tested on 1,000, the
        # sampling error alone (1.6 points) hid the accuracy gain in one of five seeds on each of two machines.
        {"smoke": Settings(train_size=128, test_size=100, epochs=2, batch_size=64, lr=0.05,
                           weight_decay=5e-4, lr_milestones=(0.5,), width=8, models=("resnet18",)),
         "quick": Settings(train_size=1280, test_size=None, val_size=1000, epochs=20, batch_size=128, lr=0.1,
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
        # 13.5 minutes (810 s) of training: the one-cycle LR follows the clock, so every run ends on time on a
        # fast or a slow machine (epochs=30 is only a cap). The per-epoch test uses 1,000 images (a
        # second each); all 10,000 are tested once at the end, in six views (flips and one-pixel
        # shifts, about 30 s), within the 15 minutes.
        {"smoke": _LAPTOP_SMOKE, "quick": _LAPTOP_QUICK, "full": _LAPTOP_QUICK}),
    "laptop-hour": Experiment(
        "the laptop recipe for an hour: a ResNet-9 at width 24 on all of CIFAR-10 within 60 minutes on 2 CPU "
        "cores (notebook 08)",
        # 55 minutes of training: the rest of the hour goes to start-up and the tests (a 1,000-image test
        # after each of 40-odd epochs, the six-view final test). epochs=100 is only a cap, above what the
        # hour allows: the one-cycle LR follows the budget, not a step count that would end it first.
        {"smoke": _LAPTOP_SMOKE, "quick": _LAPTOP_HOUR, "full": _LAPTOP_HOUR}),
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
    source = ("as given" if mode is not None else "from COURSE_MODE" if os.environ.get("COURSE_MODE")
              else "default for this machine")
    mode = current_mode() if mode is None else mode
    print(f"mode: {mode} ({source}; valid: {', '.join(MODES)})")
    device = pick_device(verbose=False)
    print(f"device: {describe_device(device)}, training precision {choose_precision(device)}")
    names = list(EXPERIMENTS) if experiment is None else [experiment] if isinstance(experiment, str) else experiment
    for name in names:
        for line in settings_lines(name, [mode]):
            print(f"{name}: {line}")
    budget = time_budget_minutes()
    print("time: each experiment prints its expected duration on this device before it trains"
          + (f"; COURSE_TIME_BUDGET={budget:g} min chooses its epochs" if budget is not None else ""))


def settings_lines(experiment: str, modes: Sequence[str]) -> list[str]:
    """One line per mode in ``modes``: the settings of ``experiment`` and, in full and paper mode, its
    estimated time on a T4 (the assumption of ``course_utils.estimates``)."""
    lines = []
    for mode in modes:
        settings = get_settings(experiment, mode)
        line = format_settings(settings)
        if mode in ("full", "paper"):
            line += f"  [estimate on a T4: {format_minutes(t4_seconds(run_specs(experiment, settings), settings))}]"
        lines.append(line)
    return lines
