"""Run modes and the one table of per-experiment settings.

``COURSE_MODE`` chooses how big every experiment is:

* ``smoke``: proves the code runs (tests, CI); each notebook well under a minute on 2 CPU cores.
* ``quick``: a laptop CPU; each notebook within about 5 minutes on 2 cores, on a CIFAR-10 subset
  with narrower models, still big enough to show the effect being taught.
* ``full``: a CUDA GPU; all of CIFAR-10, with schedules shortened so that each notebook finishes in
  about 30 minutes or less on a T4, the free Colab GPU (estimates: ``python -m course_utils list``).
* ``paper``: the paper's schedules (164 epochs, every depth): reference runs that take hours on a
  T4. Never a default; ask for it with ``COURSE_MODE=paper``. Experiments without a paper schedule
  run their full settings.

Default: ``full`` when CUDA is available, else ``quick``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch

MODES = ("smoke", "quick", "full", "paper")

# How full mode was sized: the time of one training step on a T4 (the free Colab GPU) is assumed
# to be  batch x 3 x forward MACs / T4_MACS_PER_SECOND  +  weight layers x T4_SECONDS_PER_LAYER,
# plus about a third of a step's arithmetic per test image for the evaluation after each epoch.
# - T4_MACS_PER_SECOND: 4e12 multiply-accumulates (8 TFLOP/s) in fp16 autocast, about 12% of the
#   T4's 65 TFLOP/s fp16 tensor-core peak. An assumption: no T4 has run the course yet.
# - T4_SECONDS_PER_LAYER: the fixed cost of launching a layer's kernels (forward, backward, the
#   optimiser) in each step. Measured on an H200 machine (data/results/gpu-check/speed.json): 0.36-0.53
#   ms per weight layer at batch 128 for every model from ResNet-20 to ResNet-50, where these small
#   models are bound by launches, not arithmetic; a T4 host is assumed no faster.
# The estimates are printed by `python -m course_utils list`; tests/test_estimates.py keeps each
# notebook's full mode under 30 minutes by them.
T4_MACS_PER_SECOND = 4e12
T4_SECONDS_PER_LAYER = 0.5e-3


@dataclass(frozen=True)
class Settings:
    """How one experiment runs in one mode. Sizes in images, learning rates per SGD step."""

    train_size: int | None  # class-balanced training subset; None = all 50,000 images
    test_size: int | None  # class-balanced test subset; None = all 10,000 images
    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_milestones: tuple[float, ...] = ()  # fractions of training after which the LR is divided by 10
    width: int | None = None  # base width of ResNet18/34/50 (64 in the paper)
    zero_init_residual: bool = False  # residual blocks start as the identity (their last BN scale = 0)
    models: tuple[str, ...] = ()  # model names, see experiments.build_named_model
    # The fast-training options (notebook 08). Defaults = the course's plain recipe.
    schedule: str | None = None  # "one-cycle"; None = "multistep" with lr_milestones, else constant
    warmup_fraction: float = 0.0  # one-cycle: share of the steps spent raising the LR (0 = linear decay only)
    nesterov: bool = False  # Nesterov momentum
    label_smoothing: float = 0.0  # weight of the uniform distribution mixed into the targets
    cutout: int = 0  # side of the square Cutout blanks in each training image (0 = off)
    flip_tta: bool = False  # test-time flip averaging in every evaluation
    amp: bool | str | None = None  # precision (training.choose_precision); None = by the device
    channels_last: bool | None = None  # NHWC memory layout; None = on with CUDA only
    compile: bool = False  # torch.compile the model for training
    time_budget: float | None = None  # seconds of training; the one-cycle LR follows the clock, epochs is a cap


# The paper's CIFAR recipe (Section 4.2): batch 128, SGD lr 0.1, momentum 0.9, weight decay 1e-4,
# LR divided by 10 at 32k and 48k of 64k iterations (= 50% and 75%), 164 epochs of 50k images.
# Full mode keeps all of it but the length (the milestones are fractions of the run).
_PAPER_CIFAR = dict(batch_size=128, lr=0.1, momentum=0.9, weight_decay=1e-4, lr_milestones=(0.5, 0.75))
_DEPTH_SERIES = ("plain-20", "plain-32", "plain-44", "plain-56", "resnet-20", "resnet-32", "resnet-44", "resnet-56")

FAST_OPTIONS = ("schedule", "warmup_fraction", "nesterov", "label_smoothing", "cutout", "flip_tta", "amp",
                "channels_last", "compile", "time_budget")

# The fast recipe's switches, on: one-cycle LR (warm-up 20% of the steps), Nesterov, label
# smoothing 0.1, test-time flip, and the NHWC layout (measured faster on a 2-core CPU too).
_FAST = dict(schedule="one-cycle", warmup_fraction=0.2, nesterov=True, label_smoothing=0.1, flip_tta=True,
             channels_last=True, weight_decay=5e-4)

# One row per experiment, one entry per mode. Quick-mode sizes were chosen from the calibration in
# COURSE_DESIGN.md (2 CPU cores: plain-20 ~250 images/s, ResNet-56 ~55 images/s).
SETTINGS: dict[str, dict[str, Settings]] = {
    # Notebook 01: plain vs residual at depth 20 and 56 with the same data and schedule.
    # Quick mode zero-initialises the residual blocks: measured on 2 CPU cores (64 steps at lr 0.1,
    # the quick size before it was cut to 3 epochs to fit notebook 01 into 5 minutes),
    # a default-initialised ResNet-56 spiked to loss ~11 in its first steps and ended at 2.303
    # (= ln 10, chance); zero-initialised it ended at 2.007, below plain-56's 2.219. A 0.01 -> 0.1
    # warm-up over the first epoch did not rescue it (2.304). The paper's full schedule needs neither.
    # Batch 64 (96 steps for the compute of 48 at batch 128): over seeds 0-4 plain-56 ended 0.27-0.40
    # above plain-20 and ResNet-56 within 0.08 of ResNet-20 (benchmarks/README.md, "Lessons over seeds").
    "degradation": {
        "smoke": Settings(train_size=128, test_size=100, epochs=1, batch_size=64, lr=0.1, zero_init_residual=True,
                          models=("plain-20", "plain-56", "resnet-20", "resnet-56")),
        "quick": Settings(train_size=2048, test_size=500, epochs=3, batch_size=64, lr=0.1, zero_init_residual=True,
                          models=("plain-20", "plain-56", "resnet-20", "resnet-56")),
        "full": Settings(train_size=None, test_size=None, epochs=30,
                         models=("plain-20", "plain-56", "resnet-20", "resnet-56"), **_PAPER_CIFAR),
        "paper": Settings(train_size=None, test_size=None, epochs=164,
                          models=("plain-20", "plain-56", "resnet-20", "resnet-56"), **_PAPER_CIFAR),
    },
    # Notebook 01, part 1: gradient norms at initialisation and after one epoch of a few steps.
    # Default initialisation (the lesson is about it), so the LR is 0.02: at 0.1 a ResNet-56 blew up
    # within 5 steps (loss above 9, seeds 0 and 1); at 0.02 its loss stayed below 3.8 (seeds 0-4).
    "gradients": {
        "smoke": Settings(train_size=128, test_size=None, epochs=1, batch_size=64, lr=0.02,
                          models=("plain-56", "resnet-56")),
        "quick": Settings(train_size=640, test_size=None, epochs=1, batch_size=128, lr=0.02,
                          models=("plain-56", "resnet-56")),
        "full": Settings(train_size=1280, test_size=None, epochs=1, batch_size=128, lr=0.02,
                         models=("plain-56", "resnet-56")),
    },
    # Notebook 02: the article's residual block (shared weights, ReLU before the addition) vs the
    # paper's, in the same small network (stem, 3 blocks of width 16, classifier).
    "block-defects": {
        "smoke": Settings(train_size=128, test_size=100, epochs=1, batch_size=64, lr=0.05, width=16,
                          models=("article-blocks-3", "paper-blocks-3")),
        "quick": Settings(train_size=2048, test_size=1000, epochs=4, batch_size=128, lr=0.05, width=16,
                          models=("article-blocks-3", "paper-blocks-3")),
        "full": Settings(train_size=None, test_size=None, epochs=15, batch_size=128, lr=0.05, width=16,
                         models=("article-blocks-3", "paper-blocks-3")),
    },
    # Notebook 05: ResNet18, SGD + momentum, constant LR vs the article's StepLR(step 10, gamma 0.1).
    # lr_milestones are where StepLR divides the LR, as fractions of the run (10/30 and 20/30).
    # Quick mode: a decay only pays once the constant-LR run has plateaued, so a small subset seen
    # for many epochs (the plateau comes early) and one decay at 75%. Over seeds 0-4 the decayed run
    # ended 0.09-0.16 lower in training loss and 1.9-12.0 points higher in test accuracy
    # (benchmarks/README.md, "Lessons over seeds").
    "lr-decay": {
        "smoke": Settings(train_size=128, test_size=100, epochs=2, batch_size=64, lr=0.05,
                          weight_decay=5e-4, lr_milestones=(0.5,), width=8, models=("resnet18",)),
        "quick": Settings(train_size=1280, test_size=1000, epochs=20, batch_size=128, lr=0.1,
                          weight_decay=5e-4, lr_milestones=(0.75,), width=16, models=("resnet18",)),
        "full": Settings(train_size=None, test_size=None, epochs=24, batch_size=128, lr=0.05,
                         weight_decay=5e-4, lr_milestones=(1 / 3, 2 / 3), width=64, models=("resnet18",)),
        "paper": Settings(train_size=None, test_size=None, epochs=30, batch_size=128, lr=0.05,
                          weight_decay=5e-4, lr_milestones=(1 / 3, 2 / 3), width=64, models=("resnet18",)),
    },
    # Notebook 06: one ResNet18 to save, load, test and resume (constant LR).
    "save-load": {
        "smoke": Settings(train_size=128, test_size=100, epochs=1, batch_size=64, lr=0.05,
                          weight_decay=5e-4, width=8, models=("resnet18",)),
        "quick": Settings(train_size=2048, test_size=1000, epochs=3, batch_size=128, lr=0.05,
                          weight_decay=5e-4, width=16, models=("resnet18",)),
        "full": Settings(train_size=None, test_size=None, epochs=15, batch_size=128, lr=0.05,
                         weight_decay=5e-4, width=64, models=("resnet18",)),
    },
    # Notebook 07: test error against depth, plain vs residual, and ResNet18/34/50 (CIFAR stem).
    # Quick: batch 64 (48 steps). Over seeds 0-4 plain-56 ended 0.19-0.29 above plain-20 in final
    # training loss, ResNet-56 within 0.02 of ResNet-20 (benchmarks/README.md, "Lessons over seeds").
    "depth": {
        "smoke": Settings(train_size=128, test_size=100, epochs=1, batch_size=64, lr=0.1, width=8,
                          zero_init_residual=True, models=("plain-20", "resnet-20", "resnet18")),
        "quick": Settings(train_size=1024, test_size=500, epochs=3, batch_size=64, lr=0.1, width=16,
                          zero_init_residual=True,
                          models=("plain-20", "plain-32", "plain-44", "plain-56",
                                  "resnet-20", "resnet-32", "resnet-44", "resnet-56")),
        # Full: the depth series 20-56 (the 110-layer pair and ResNet18/34/50 alone would need over
        # an hour on a T4 for a few epochs); the paper's table needs COURSE_MODE=paper.
        "full": Settings(train_size=None, test_size=None, epochs=15, width=64, models=_DEPTH_SERIES, **_PAPER_CIFAR),
        "paper": Settings(train_size=None, test_size=None, epochs=164, width=64,
                          models=(*_DEPTH_SERIES[:4], "plain-110", *_DEPTH_SERIES[4:], "resnet-110",
                                  "resnet18", "resnet34", "resnet50"), **_PAPER_CIFAR),
    },
    # Notebook 08, part 1: the fast recipe's tricks switched on one at a time (experiments.ABLATION).
    # The base is the course's default recipe (SGD + momentum, constant LR, fp32, NCHW).
    # Full mode also times torch.compile; on a 2-core CPU compiling ResNet18-w16 took 54 s, more
    # than a quick-mode run lasts.
    "fast-ablation": {
        "smoke": Settings(train_size=128, test_size=100, epochs=1, batch_size=64, lr=0.05, weight_decay=5e-4,
                          width=8, models=("resnet18",)),
        "quick": Settings(train_size=2560, test_size=1000, epochs=2, batch_size=128, lr=0.05, weight_decay=5e-4,
                          width=16, models=("resnet18",)),
        "full": Settings(train_size=None, test_size=None, epochs=6, batch_size=512, lr=0.2, weight_decay=5e-4,
                         width=64, compile=True, models=("resnet18",)),
    },
    # The fast recipe for ResNet18 (benchmarks/fast_resnet18.py): batch 512, LR scaled linearly from
    # 0.1 per 128 images. Its target was >= 94% in <= 30 s on one H100; measured once on an H200
    # (data/results/gpu-check): 89.78% after 16 epochs (62 s with a 41 s compilation), and 91.64%
    # after 40 epochs (data/results/gpu-fast-40-epochs): the recipe falls short of 94%.
    "fast": {
        "smoke": Settings(train_size=256, test_size=100, epochs=1, batch_size=64, lr=0.1, width=8,
                          models=("resnet18",), **_FAST),
        "quick": Settings(train_size=5000, test_size=1000, epochs=2, batch_size=128, lr=0.1, width=16,
                          models=("resnet18",), **_FAST),
        "full": Settings(train_size=None, test_size=None, epochs=16, batch_size=512, lr=0.4, width=64,
                         amp=True, compile=True, models=("resnet18",), **_FAST),
    },
    # The laptop recipe (notebook 08, part 2): ResNet18 at width 16 on all of CIFAR-10 for 14
    # minutes of training on 2 CPU cores. Chosen by measurement (benchmarks/README.md). On the
    # reference 2-core VM the same network trained at 270-606 images/s depending on the neighbours'
    # load, so 7 epochs would take 10 to 22 minutes; with a time budget the one-cycle LR
    # follows the clock and every run ends on time (epochs=30 is only a cap for fast machines).
    # 14 minutes leaves room for the last step and the timer's noise within the 15-minute target.
    "laptop": {
        "smoke": Settings(train_size=256, test_size=100, epochs=1, batch_size=64, lr=0.1, width=8,
                          models=("resnet18",), **_FAST),
        "quick": Settings(train_size=None, test_size=None, epochs=30, batch_size=128, lr=0.1, width=16,
                          time_budget=14 * 60, models=("resnet18",), **_FAST),
        "full": Settings(train_size=None, test_size=None, epochs=30, batch_size=128, lr=0.1, width=16,
                         time_budget=14 * 60, models=("resnet18",), **_FAST),
    },
}


def current_mode() -> str:
    """The active mode: ``COURSE_MODE`` if set, else ``full`` with CUDA and ``quick`` without."""
    mode = os.environ.get("COURSE_MODE", "").strip().lower()
    if not mode:
        return "full" if torch.cuda.is_available() else "quick"
    if mode not in MODES:
        raise ValueError(
            f"COURSE_MODE={os.environ['COURSE_MODE']!r} is not a run mode; use one of {', '.join(MODES)} "
            "(or unset it to get 'full' on a CUDA GPU and 'quick' otherwise)"
        )
    return mode


def get_settings(experiment: str, mode: str | None = None) -> Settings:
    """The settings of ``experiment`` in ``mode`` (default: the active mode)."""
    if experiment not in SETTINGS:
        raise ValueError(f"unknown experiment {experiment!r}; choose one of {', '.join(SETTINGS)}")
    mode = current_mode() if mode is None else mode
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    table = SETTINGS[experiment]
    return table.get(mode, table["full"])  # no paper schedule of its own: the paper mode runs full


def describe(experiment: str | None = None, mode: str | None = None) -> None:
    """Print the active mode, the device and what the mode implies for ``experiment`` (or all)."""
    mode = current_mode() if mode is None else mode
    source = "from COURSE_MODE" if os.environ.get("COURSE_MODE") else "default for this machine"
    print(f"mode: {mode} ({source}; valid: {', '.join(MODES)})")
    from course_utils.training import choose_precision, describe_device, pick_device  # late: training imports modes

    device = pick_device(verbose=False)
    print(f"device: {describe_device(device)}, training precision {choose_precision(device)}")
    from course_utils.experiments import t4_experiment_seconds, time_budget_minutes  # late: experiments imports modes

    names = list(SETTINGS) if experiment is None else [experiment]
    for name in names:
        settings = get_settings(name, mode)
        print(f"{name}: {format_settings(settings)}")
        if mode in ("full", "paper"):
            print(f"  estimate on a T4 (an assumption, see course_utils/modes.py): "
                  f"{t4_experiment_seconds(name, settings) / 60:.1f} min")
    budget = time_budget_minutes()
    print("time: each experiment prints its expected duration on this device before it trains"
          + (f"; COURSE_TIME_BUDGET={budget:g} min chooses its epochs" if budget is not None else ""))


def format_settings(settings: Settings) -> str:
    """One line with every setting, e.g. 'train_size=2,048, test_size=1,000, epochs=4, ...'."""
    parts = []
    defaults = Settings.__dataclass_fields__
    for key, value in asdict(settings).items():
        if key in FAST_OPTIONS and value == defaults[key].default:
            continue  # a fast-training option left off: say nothing
        if key in ("train_size", "test_size"):
            value = "all" if value is None else f"{value:,}"
        if value in ((), None):
            continue
        if key == "lr_milestones":
            value = "[" + ", ".join(f"{fraction:.0%}" for fraction in value) + " of training]"
        elif isinstance(value, tuple):
            value = ", ".join(value)
        parts.append(f"{key}={value}")
    return ", ".join(parts)
