"""Run modes, and ``Settings``: how big one experiment is in one mode.

``COURSE_MODE`` chooses how big every experiment is:

* ``smoke``: proves the code runs (tests, CI); each notebook well under a minute on 2 CPU cores.
* ``quick``: a laptop CPU; each notebook within about 5 minutes on 2 cores, on a CIFAR-10 subset
  with narrower models, still big enough to show the effect being taught.
* ``full``: a CUDA GPU; all of CIFAR-10, with schedules shortened so that each notebook finishes in
  about 30 minutes or less on a T4, the free Colab GPU (estimates: ``python -m course_utils list``).
* ``paper``: the paper's schedules (164 epochs, every depth): reference runs that take hours on a
  T4. Never a default; ask for it with ``COURSE_MODE=paper``. Experiments without a paper schedule
  run their full settings.

Default: ``full`` when CUDA is available, else ``quick``. The settings of each experiment in each
mode are in its entry of ``experiments.EXPERIMENTS``.
"""

from __future__ import annotations

import math
import os
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Callable

import torch
from torch import nn

from course_utils import models
from course_utils.devices import AUTOCAST_DTYPES, COMPILE_MODES, NATIVE, Speed
from course_utils.schedules import SCHEDULES
from course_utils.training import seed_everything

MODES = ("smoke", "quick", "full", "paper")


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


TRUE_WORDS, FALSE_WORDS = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _flag(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS  # "false" must mean off: a non-empty string is truthy
    raise ValueError


def _count(least: int, none_allowed: bool = False):
    def check(value):
        if value is None and none_allowed:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError
        return value
    return check


def _number(low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = True,
            none_allowed: bool = False):
    def check(value):
        if value is None and none_allowed:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError
        if value < low or (low_open and value == low) or value > high or (high_open and value == high):
            raise ValueError
        return float(value)
    return check


def _names(value):
    names = tuple(part.strip() for part in value.split(",") if part.strip()) if isinstance(value, str) else \
        tuple(value) if isinstance(value, (list, tuple)) else (value,)
    if not names or not all(isinstance(name, str) and name for name in names) or len(set(names)) != len(names):
        raise ValueError
    return names


def _fractions(value):
    fractions = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    return tuple(_number(0, 1, low_open=True)(fraction) for fraction in fractions)


def _one_of(*choices):
    def check(value):
        if value not in choices:
            raise ValueError
        return value
    return check


def _precision(value):
    if value is None or isinstance(value, str) and (value in AUTOCAST_DTYPES or value == NATIVE):
        return value
    return _flag(value)


def _compile_choice(value):
    if isinstance(value, str) and value in COMPILE_MODES:
        return value
    return _flag(value)


def _optional_flag(value):
    return None if value is None else _flag(value)


def setting(group: str, takes: str, check: Callable, default=MISSING):
    """A field of ``Settings``: its group (``GROUP_ORDER``), what it takes (said in an error) and the
    check that converts a value to it or refuses it. The one declaration of a setting's type and range:
    ``Settings(...)`` and ``dataclasses.replace`` check with it, and so do ``--set`` and ``overrides=``
    (``check_setting``)."""
    return field(default=default, metadata={"group": group, "takes": takes, "check": check})


_SIZE = "a number of images, at least 1, or None for all"
_FRACTION = "a number from 0 to below 1"
_FLAG = "true or false"


@dataclass(frozen=True)
class Settings:
    """How one experiment runs in one mode. Sizes in images, learning rates per SGD step.

    Each field says its group (data, model, optimiser, schedule, evaluation, speed: ``GROUPS``, the
    way airbench groups its hyper-parameters), what it takes and its check; a value outside it is a
    ValueError naming the setting, whether it comes from the registry, ``replace`` or ``--set``.
    The five without a default come first.
    """

    # class-balanced training subset; None = all 50,000 images
    train_size: int | None = setting("data", _SIZE, _count(1, none_allowed=True))
    # class-balanced test subset; None = all 10,000 images
    test_size: int | None = setting("data", _SIZE, _count(1, none_allowed=True))
    batch_size: int = setting("data", "a whole number of images, at least 1", _count(1))
    epochs: int = setting("schedule", "a whole number, at least 1", _count(1))
    lr: float = setting("optimiser", "a number above 0", _number(0, low_open=True))
    momentum: float = setting("optimiser", _FRACTION, _number(0, 1), 0.9)
    weight_decay: float = setting("optimiser", "a number, 0 or more", _number(0), 1e-4)
    nesterov: bool = setting("optimiser", _FLAG, _flag, False)  # Nesterov momentum
    # weight of the uniform distribution mixed into the targets
    label_smoothing: float = setting("optimiser", _FRACTION, _number(0, 1), 0.0)
    # side of the square Cutout blanks in each training image (0 = off)
    cutout: int = setting("data", "a whole number of pixels, 0 (off) or more", _count(0), 0)
    # model names, see models.build
    models: tuple[str, ...] = setting("model", "one or more model names, each once, e.g. resnet9 or "
                                               "plain-20,resnet-20", _names, ())
    # base width of ResNet18/34/50 (64 in the paper)
    width: int | None = setting("model", "a whole number, at least 1, or None for the network's own",
                                _count(1, none_allowed=True), None)
    # residual blocks start as the identity (their last BN scale = 0)
    zero_init_residual: bool = setting("model", _FLAG, _flag, False)
    # fractions of training after which the LR is divided by 10
    lr_milestones: tuple[float, ...] = setting("schedule", "fractions of the run between 0 and 1, e.g. 0.5,0.75",
                                               _fractions, ())
    # schedules.SCHEDULES; None = "multistep" with lr_milestones, else constant
    schedule: str | None = setting("schedule", f"one of {', '.join(SCHEDULES)}, or None",
                                   _one_of(None, *SCHEDULES), None)
    # one-cycle: share of the steps spent raising the LR (0 = linear decay only)
    warmup_fraction: float = setting("schedule", _FRACTION, _number(0, 1), 0.0)
    # seconds of training; the one-cycle LR follows the clock, epochs is a cap
    time_budget: float | None = setting("schedule", "a number of seconds above 0, or None",
                                        _number(0, low_open=True, none_allowed=True), None)
    # training images at most (a budget of work, not time: a fast hour does no more than a slow one);
    # with time_budget, whichever is spent first ends the run, and the one-cycle LR follows it
    image_budget: int | None = setting("schedule", "a whole number of training images, at least 1, or None",
                                       _count(1, none_allowed=True), None)
    flip_tta: bool = setting("evaluation", _FLAG, _flag, False)  # test-time flip averaging in every evaluation
    # the final test of all test images also averages one-pixel shifts (training.evaluate); the
    # per-epoch tests do not, they would take three times as long
    translate_tta: bool = setting("evaluation", _FLAG, _flag, False)
    # test images evaluated after each epoch (a fixed class-balanced sample, then the whole test split
    # once at the end); None = all, every epoch
    val_size: int | None = setting("evaluation", "a number of test images, at least 1, or None for all",
                                   _count(1, none_allowed=True), None)
    # precision (devices.choose_precision); None = by the GPU (fp32 on a CPU), "native" = also by the CPU
    amp: bool | str | None = setting("speed", f"true, false, None (automatic), {NATIVE} (automatic, CPUs included) "
                                              f"or one of {', '.join(AUTOCAST_DTYPES)}",
                                     _precision, None)
    # NHWC memory layout; None = on with CUDA only
    channels_last: bool | None = setting("speed", "true, false or None (automatic)", _optional_flag, None)
    # torch.compile the model for training (True, or a mode: devices.COMPILE_MODES)
    compile: bool | str = setting("speed", f"true, false or a torch.compile mode ({', '.join(COMPILE_MODES)})",
                                  _compile_choice, False)

    def __post_init__(self) -> None:
        for name in SETTING_CHECKS:
            value = getattr(self, name)
            checked = check_setting(name, value)
            # Store what the check made of it ("resnet9" -> ("resnet9",), "false" -> False, 1 -> True), but
            # keep a whole number where a float is taken: time_budget=840 prints as 840, not 840.0.
            if checked != value or (type(checked) is not type(value) and not isinstance(checked, float)):
                object.__setattr__(self, name, checked)

    @property
    def speed(self) -> Speed:
        return Speed(amp=self.amp, channels_last=self.channels_last, compile=self.compile)


# Each setting's (what it takes, check), and the groups in the order format_settings prints them.
SETTING_CHECKS = {item.name: (item.metadata["takes"], item.metadata["check"]) for item in fields(Settings)}
GROUP_ORDER = ("data", "model", "optimiser", "schedule", "evaluation", "speed")
GROUPS = {group: tuple(item.name for item in fields(Settings) if item.metadata["group"] == group)
          for group in GROUP_ORDER}


def check_setting(name: str, value):
    """``value`` as the setting ``name`` takes it (``"false"`` -> False, ``"resnet9"`` -> ("resnet9",)),
    or a ValueError that names the setting and the values it takes. Every way of changing a setting
    (``Settings(...)``, ``replace``, ``--set``, ``overrides=``) goes through here, before any data is loaded."""
    if name not in SETTING_CHECKS:
        raise ValueError(f"unknown setting {name!r}; the settings are: {', '.join(SETTING_CHECKS)}")
    takes, check = SETTING_CHECKS[name]
    if isinstance(value, str) and value.strip().lower() == "none":
        value = None  # "--set test_size=none" means None, as "false" means False; refused where None is not taken
    try:
        return check(value)
    except (ValueError, TypeError):
        raise ValueError(f"{name}={value!r}: {name} takes {takes}") from None


@dataclass(frozen=True)
class RunSpec:
    """One training run of an experiment: a label, a model name (``models.build``) and the settings
    this run changes, e.g. ``(("schedule", "step"),)`` for notebook 05's StepLR run."""

    label: str
    model: str  # e.g. "plain-56", "resnet-20", "resnet18"
    changes: tuple[tuple[str, object], ...] = ()

    def settings(self, settings: Settings) -> Settings:
        """The experiment's settings with this run's changes applied."""
        return replace(settings, **dict(self.changes))

    def build_model(self, settings: Settings, seed: int = 0) -> nn.Module:
        """The run's freshly initialised model: seeded, so that runs of equal architectures start equal."""
        run_settings = self.settings(settings)
        seed_everything(seed)
        return models.build(self.model, run_settings.width, run_settings.zero_init_residual)


# The options of the fast recipe (notebook 08): format_settings leaves them out while they are off.
FAST_OPTIONS = ("schedule", "warmup_fraction", "nesterov", "label_smoothing", "cutout", "flip_tta", "translate_tta", "amp",
                "channels_last", "compile", "time_budget", "image_budget", "val_size")



def format_settings(settings: Settings) -> str:
    """The settings by group on one line, e.g. 'data: train_size=2,048, test_size=500, batch_size=64;
    model: ...'. Fast-training options that are off are left out."""
    values, defaults = asdict(settings), Settings.__dataclass_fields__
    groups = []
    for group, keys in GROUPS.items():
        parts = [_format_value(key, values[key]) for key in keys
                 if not (key in FAST_OPTIONS and values[key] == defaults[key].default)]
        parts = [part for part in parts if part]
        if parts:
            groups.append(f"{group}: " + ", ".join(parts))
    return "; ".join(groups)


def _format_value(key: str, value) -> str:
    if key in ("train_size", "test_size", "val_size"):
        return f"{key}=" + ("all" if value is None else f"{value:,}")
    if value in ((), None):
        return ""
    if key == "lr_milestones":
        value = "[" + ", ".join(f"{fraction:.0%}" for fraction in value) + " of training]"
    elif isinstance(value, tuple):
        value = ", ".join(value)
    return f"{key}={value}"
