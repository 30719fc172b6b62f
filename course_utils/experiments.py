"""The course's named experiments, runnable from a notebook or from the command line.

    python -m course_utils list
    python -m course_utils run degradation --mode quick --out data/runs/degradation-quick

Each experiment trains the models its row of ``modes.SETTINGS`` names, with the sizes of the
active mode, and returns (and, given a folder, writes) one run record per trained model.
"""

from __future__ import annotations

import argparse
import ast
import copy
import math
import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from course_utils import models
from course_utils.article import article_block_stack
from course_utils.checkpoint import save_checkpoint
from course_utils.data import Cifar10, TensorLoader, load_cifar10
from course_utils.modes import (MODES, SETTINGS, T4_MACS_PER_SECOND, T4_SECONDS_PER_LAYER, Settings, current_mode,
                                format_settings, get_settings)
from course_utils.training import (History, TimeBudget, check_folder_writable, fit, is_distributed, is_main_process,
                                   launched_by_torchrun, measure_training_speed, pick_device, seed_everything,
                                   start_process_group, stop_process_group)

# He et al. 2016, Table 6: CIFAR-10 test error (%) of the paper's ResNets, by depth.
PAPER_TEST_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}

DESCRIPTIONS = {
    "degradation": "plain vs residual networks of depth 20 and 56, same data and schedule (notebook 01)",
    "block-defects": "the article's residual block (shared weights, ReLU before the addition) vs the paper's, "
                     "3 blocks each (notebook 02)",
    "lr-decay": "ResNet18 with a constant learning rate vs the article's StepLR decay (notebook 05)",
    "depth": "test error against depth: plain and residual 20-110 layers, ResNet18/34/50 (notebook 07)",
    "fast-ablation": "the fast recipe's tricks switched on one at a time, ResNet18 (notebook 08)",
    "fast": "ResNet18 with the whole fast recipe (benchmarks/fast_resnet18.py, notebook 08)",
    "laptop": "ResNet18 width 16 on all of CIFAR-10 in under 15 minutes on 2 CPU cores (notebook 08)",
}

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
    ("+ torch.compile", {"compile": True}),  # only where the settings ask for it (see modes.SETTINGS)
)


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


def build_named_model(name: str, width: int | None = None, zero_init_residual: bool = False) -> nn.Module:
    """``"plain-56"`` -> ``plain_net(56)``, ``"resnet-20"`` -> ``cifar_resnet(20)``,
    ``"resnet18"`` -> ``resnet18(stem="cifar", width=width or 64)`` (likewise 34 and 50),
    ``"article-blocks-3"`` / ``"paper-blocks-3"`` -> a stem, 3 of the article's / the paper's
    residual blocks of ``width`` channels (16 by default), pooling and a classifier.

    ``zero_init_residual`` applies to the residual networks only: a plain block whose last
    BatchNorm scale is zero would output zeros, not its input.
    """
    match = re.fullmatch(r"(plain|resnet)-(\d+)", name)
    if match:
        family, depth = match.group(1), int(match.group(2))
        if family == "plain":
            return models.plain_net(depth)
        return models.cifar_resnet(depth, zero_init_residual=zero_init_residual)
    if name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
        return models.build_model(name, stem="cifar", width=width or 64, zero_init_residual=zero_init_residual)
    match = re.fullmatch(r"(article|paper)-blocks-(\d+)", name)
    if match:  # notebook 02: N blocks of the article's design or of the paper's, same stem and head
        blocks = int(match.group(2))
        if match.group(1) == "article":
            return article_block_stack(num_blocks=blocks, width=width or 16)
        return models.ResNet(models.BasicBlock, [blocks], stem="cifar", width=width or 16)
    raise ValueError(f"unknown model name {name!r}; use 'plain-D' or 'resnet-D' (D = 6n + 2, "
                     f"e.g. 20, 56), resnet18 / 34 / 50 / 101 / 152, or article-blocks-N / paper-blocks-N")


def run_specs(experiment: str, settings: Settings) -> list[RunSpec]:
    """The runs an experiment is made of."""
    if experiment == "lr-decay":
        # The article's comparison: the same model, data order and start, with and without decay.
        return [spec for name in settings.models for spec in (
            RunSpec(f"{name} constant LR", name, "constant"),
            RunSpec(f"{name} StepLR", name, "step"),
        )]
    if experiment == "fast-ablation":
        specs, changes = [], {}
        for label, change in ABLATION:
            if "compile" in change and not settings.compile:
                continue  # compiling costs about a minute on a CPU: only where the mode asks for it
            changes = {**changes, **change}
            specs.append(RunSpec(label, settings.models[0], changes.get("schedule", "constant"),
                                 tuple(changes.items())))
        return specs
    return [RunSpec(name, name, settings.schedule or ("multistep" if settings.lr_milestones else "constant"))
            for name in settings.models]


def make_scheduler(optimizer: torch.optim.Optimizer, settings: Settings, schedule: str,
                   steps_per_epoch: int | None = None, budget: TimeBudget | None = None):
    """The learning-rate schedule of a run (None for a constant LR).

    ``step``: the article's ``StepLR(step_size, gamma=0.1)`` with its step of 10 epochs (of 30)
    scaled to the run's length. ``multistep``: the paper's division by 10 at the given fractions.
    Both are stepped once per epoch. ``one-cycle``: ``one_cycle_factor`` times the LR, stepped
    once per optimiser step (``schedule_interval``), so it needs ``steps_per_epoch``. Its progress
    is the share of the ``settings.epochs`` steps done or, with a ``budget`` (the same one given
    to ``fit(time_limit=...)``), the share of the time spent, whichever is further along.
    """
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
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=milestones[0], gamma=0.1)
    if schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    raise ValueError(f"unknown schedule {schedule!r}; use 'constant', 'step', 'multistep' or 'one-cycle'")


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


def t4_step_seconds(model: nn.Module, batch_size: int) -> float:
    """Assumed seconds of one training step of ``model`` on a T4: arithmetic at
    ``modes.T4_MACS_PER_SECOND`` plus a fixed cost per weight layer (the assumption is stated
    next to the constants in ``course_utils.modes``)."""
    layers = sum(isinstance(module, (nn.Conv2d, nn.Linear)) for module in model.modules())
    return batch_size * 3 * models.count_macs(model) / T4_MACS_PER_SECOND + layers * T4_SECONDS_PER_LAYER


def measured_step_seconds(model: nn.Module, settings: Settings, data: Cifar10, device: torch.device) -> float:
    """Seconds of one training step of a copy of ``model`` on ``device``, at the run's batch size,
    precision and layout: two untimed steps (the first call in a process also pays for setting up
    kernels: it made a first estimate 3x too long), then two timed. The model itself is not touched."""
    batch = min(settings.batch_size, len(data.train_images))
    images = data.train_images[:batch].float().div(255)  # the speed does not depend on normalising
    rate = measure_training_speed(copy.deepcopy(model), images, data.train_labels[:batch], steps=2, warmup=2,
                                  device=device, amp=settings.amp, channels_last=settings.channels_last)
    return batch / rate


def epoch_seconds(step_seconds: float, settings: Settings, train_images: int, test_images: int) -> float:
    """One epoch: its training steps, then the test pass (forward only, about a third of a
    training step's work per image; twice that with test-time flipping)."""
    steps = math.ceil(train_images / settings.batch_size)
    test = test_images / settings.batch_size * step_seconds / 3 * (2 if settings.flip_tta else 1)
    return steps * step_seconds + test


def estimate_epoch_seconds(experiment: str, settings: Settings, *, device: torch.device | str | None = None,
                           data: Cifar10 | None = None, seed: int = 0,
                           specs: list[RunSpec] | None = None) -> dict[str, float]:
    """Seconds per epoch of each run of ``experiment`` with ``settings``: ``{label: seconds}``.

    ``device="t4"``: by the T4 assumption of ``course_utils.modes`` (no data needed). Otherwise
    measured on that device: a few timed training steps of each run's model on ``data`` (which
    must already be the experiment's subset). torch.compile's compilation is not included.
    ``specs``: only these runs (default: all of the experiment's).
    """
    train_images = len(data.train_images) if data is not None else (settings.train_size or 50_000)
    test_images = len(data.test_images) if data is not None else (settings.test_size or 10_000)
    estimates = {}
    for spec in specs if specs is not None else run_specs(experiment, settings):
        run_settings = spec.settings(settings)
        model = build_model_for(spec, settings, seed)
        if device == "t4":
            step = t4_step_seconds(model, run_settings.batch_size)
        else:
            if data is None:
                raise ValueError("measuring on a device needs the data (the experiment's subset)")
            step = measured_step_seconds(model, run_settings, data, torch.device(device))
        estimates[spec.label] = epoch_seconds(step, run_settings, train_images, test_images)
    return estimates


def t4_experiment_seconds(experiment: str, settings: Settings) -> float:
    """Estimated seconds of all runs of ``experiment`` on a T4 (a run with a time budget stops at it)."""
    per_epoch = estimate_epoch_seconds(experiment, settings, device="t4").values()
    return sum(min(settings.epochs * seconds, settings.time_budget or math.inf) for seconds in per_epoch)


def epochs_for_budget(minutes: float, seconds_per_epoch: dict[str, float], most: int) -> int:
    """The most epochs (at least 1, at most ``most``) for which every run together fits ``minutes``;
    every run gets the same number, so a comparison stays fair (same steps, same data)."""
    if not minutes > 0:
        raise ValueError(f"a time budget must be a positive number of minutes, got {minutes!r}")
    return max(1, min(most, int(minutes * 60 // sum(seconds_per_epoch.values()))))


def time_budget_minutes(explicit: float | None = None) -> float | None:
    """The experiment time budget: ``explicit`` if given, else ``$COURSE_TIME_BUDGET`` (minutes), else None."""
    if explicit is not None:
        return float(explicit)
    value = os.environ.get("COURSE_TIME_BUDGET", "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"COURSE_TIME_BUDGET={value!r} is not a number of minutes; set e.g. "
                         f"COURSE_TIME_BUDGET=20, or unset it to run the mode's epochs") from None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


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
) -> dict[str, History]:
    """Train every run of ``experiment`` in the active mode; return ``{label: History}``.

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
    mode = current_mode()
    settings = get_settings(experiment, mode)
    if overrides:
        unknown = sorted(set(overrides) - set(Settings.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown} in overrides; settings are: "
                             f"{', '.join(Settings.__dataclass_fields__)}")
        settings = replace(settings, **overrides)
    specs = run_specs(experiment, settings)
    if only is not None:
        unknown = sorted(set(only) - {spec.label for spec in specs})
        if unknown:
            raise ValueError(f"{experiment} has no run(s) {unknown}; its runs: {[s.label for s in specs]}")
        specs = [spec for spec in specs if spec.label in only]
    if save_models and out_dir is None:
        raise ValueError("save_models=True needs an out_dir (--out) to write the checkpoints to")
    if out_dir is not None:
        _check_output_folder(Path(out_dir))  # before any training, not after the first run
    paths = {spec.label: Path(out_dir) / f"{experiment}__{slug(spec.label)}.json" for spec in specs} if out_dir else {}
    written = [*paths.values(), *(path.with_suffix(".pt") for path in paths.values() if save_models)]
    existing = [str(path) for path in written if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"run records already exist ({', '.join(existing)}); choose another "
                              f"output folder, or pass overwrite=True (--overwrite) to replace them")

    main = is_main_process()  # under torchrun, only process 0 prints and writes records
    device = torch.device(device) if device is not None else pick_device(verbose=main)
    data = (data if data is not None else load_cifar10()).subset(settings.train_size, settings.test_size, seed)
    budget = time_budget_minutes(budget_minutes)
    if budget is not None and is_distributed():
        raise ValueError("a time budget is not supported under torchrun (each process would measure its own "
                         "estimate); choose the epochs with --set epochs=N instead")
    estimates = estimate_epoch_seconds(experiment, settings, device=device, data=data, seed=seed, specs=specs)
    choice = None
    if budget is not None:
        epochs = epochs_for_budget(budget, estimates, settings.epochs)
        choice = {"budget_minutes": budget, "mode_epochs": settings.epochs, "epochs": epochs,
                  "estimated_minutes": round(epochs * sum(estimates.values()) / 60, 2),
                  "why": f"{epochs} epoch(s) of every run fit the {budget:g}-minute budget by the estimate "
                         f"of {sum(estimates.values()):.1f} s per epoch of all runs (mode: {settings.epochs} epochs)"}
        settings = replace(settings, epochs=epochs)
    if main:
        print(f"{experiment} in {mode} mode: {format_settings(settings)}")
        # A run with a time budget of its own (the laptop recipe) stops when that is spent.
        expected = {label: min(settings.epochs * seconds, settings.time_budget or math.inf)
                    for label, seconds in estimates.items()}
        print(f"expected on {device.type} (a few timed steps per run"
              + ("; plus compilation" if settings.compile else "") + "): "
              + ", ".join(f"{label} {_minutes(seconds)}" for label, seconds in expected.items())
              + f"; all {_minutes(sum(expected.values()))}")
        if choice:
            print(f"time budget: {choice['why']}")

    runs = {}
    for spec in specs:
        if main:
            print(f"--- {spec.label} ---")
        model = build_model_for(spec, settings, seed)
        history = train_run(spec, settings, data, device=device, seed=seed, progress=progress, model=model)
        if history.meta.get("stopped", "").startswith("interrupted"):
            # Ctrl-C stops the whole experiment: no next run, and no record of the incomplete one.
            if main:
                print(f"Interrupted during {spec.label}: {experiment} stopped; the records of its "
                      f"{len(runs)} complete run(s) are kept" + (f" in {out_dir}" if out_dir else "") + ".")
            raise KeyboardInterrupt
        if keep_models is not None:
            keep_models[spec.label] = model
        history.config.update(experiment=experiment, run=spec.label, command=command, overrides=overrides or {},
                              estimated_epoch_seconds=round(estimates[spec.label], 3), time_budget_choice=choice)
        if spec.label in paths and main:
            history.save_json(paths[spec.label])
            if save_models:
                save_checkpoint(paths[spec.label].with_suffix(".pt"), model, history=history,
                                epoch=history.epochs_done)
        runs[spec.label] = history
    return runs


def _check_output_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"the output folder {folder} is a file; choose a folder for the run records")
    check_folder_writable(folder, f"run records to {folder}")


def build_model_for(spec: RunSpec, settings: Settings, seed: int = 0) -> nn.Module:
    """The freshly initialised model of a run: seeded, so equal architectures start equal."""
    settings = spec.settings(settings)
    seed_everything(seed)
    return build_named_model(spec.model, settings.width, settings.zero_init_residual)


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
    budget = TimeBudget(settings.time_budget) if settings.time_budget else None
    scheduler = make_scheduler(optimizer, settings, spec.schedule, steps_per_epoch=len(train_loader), budget=budget)
    return fit(model, train_loader, epochs=settings.epochs, optimizer=optimizer, scheduler=scheduler,
               scheduler_interval=schedule_interval(spec.schedule), val_loader=test_loader, device=device,
               amp=settings.amp, channels_last=settings.channels_last, compile=settings.compile, time_limit=budget,
               flip_tta=settings.flip_tta, loss_fn=nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing),
               progress=progress,
               config={"model_name": spec.model, "schedule": spec.schedule, "seed": seed,
                       "test_images": len(data.test_images), "label_smoothing": settings.label_smoothing,
                       "warmup_fraction": settings.warmup_fraction, "time_budget": settings.time_budget})


def load_runs(folder: str | os.PathLike, experiment: str | None = None) -> dict[str, History]:
    """Run records in ``folder`` (e.g. ``data/results``) as ``{label: History}``; {} if none."""
    pattern = f"{experiment}__*.json" if experiment else "*.json"
    runs = {}
    for path in sorted(Path(folder).glob(pattern)):
        history = History.load_json(path)
        runs[history.config.get("run", path.stem)] = history
    return runs


def load_seed_runs(folder: str | os.PathLike, experiment: str) -> dict[int, History]:
    """Records of one experiment repeated over seeds, one sub-folder each (``folder/seed-N/``, as
    the benchmarks write them), as ``{seed: History}``; {} if there are none."""
    runs = {}
    for seed_folder in sorted(Path(folder).glob("seed-*")):
        for history in load_runs(seed_folder, experiment).values():
            runs[history.config.get("seed", seed_folder.name)] = history
    return dict(sorted(runs.items()))


def parse_overrides(pairs: list[str]) -> dict:
    """``["epochs=4", "train_size=None", "schedule=one-cycle"]`` -> ``{"epochs": 4, "train_size": None,
    "schedule": "one-cycle"}``: values are read as Python literals, anything else as a string."""
    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ValueError(f"settings are given as KEY=VALUE (e.g. epochs=4), got {pair!r}")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    return overrides


def slug(label: str) -> str:
    """A file-name-safe version of a run label: 'resnet18 StepLR' -> 'resnet18-steplr'."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def list_experiments() -> None:
    """Print every experiment with its sizes in each mode, and for full and paper mode the
    estimated time on a T4 (the assumption is in ``course_utils.modes``)."""
    print("Times on a T4 are estimates: forward MACs x 3 at 4 TMAC/s plus 0.5 ms per weight layer per step "
          "(see course_utils/modes.py), without compilation.")
    for name, description in DESCRIPTIONS.items():
        print(f"{name}: {description}")
        for mode in MODES:
            if mode == "paper" and mode not in SETTINGS[name]:
                continue  # runs its full settings
            settings = get_settings(name, mode)
            line = f"  {mode:>5}: {format_settings(settings)}"
            if mode in ("full", "paper"):
                line += f"  [estimate on a T4: {_minutes(t4_experiment_seconds(name, settings))}]"
            print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils",
                                     description="Run the ResNet course's experiments without Jupyter.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the experiments and their sizes in each mode")
    run = commands.add_parser("run", help="run one experiment and write one run record per model")
    run.add_argument("experiment", choices=sorted(DESCRIPTIONS))
    run.add_argument("--mode", choices=MODES, default=None,
                     help="run mode (default: $COURSE_MODE, else full with CUDA and quick without)")
    run.add_argument("--out", default=None,
                     help="folder for the run records (default: data/runs/EXPERIMENT-MODE)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--only", nargs="+", metavar="LABEL", help="run only these runs (labels as in `list`)")
    run.add_argument("--overwrite", action="store_true", help="replace existing run records")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (for log files)")
    run.add_argument("--save-models", action="store_true",
                     help="also write each trained model as a checkpoint beside its record")
    run.add_argument("--budget", type=float, default=None, metavar="MINUTES",
                     help="choose the epochs so that all runs fit MINUTES by the printed estimate "
                          "(default: $COURSE_TIME_BUDGET, else the mode's epochs)")
    run.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                     help="change settings of the mode for this run, e.g. --set epochs=4 train_size=None "
                          "(stored in each record's config['overrides'])")
    args = parser.parse_args(argv)

    if args.command == "list":
        list_experiments()
        return 0
    if args.mode is not None:
        os.environ["COURSE_MODE"] = args.mode  # so every record states the mode it ran in
    if launched_by_torchrun() and not is_distributed():
        start_process_group()
    code = _run_command(args, argv)  # on an exception, torchrun stops the other processes
    if code != 130:  # after Ctrl-C the other processes may be anywhere: no barrier to wait at
        stop_process_group()
    return code


def _run_command(args: argparse.Namespace, argv: list[str] | None) -> int:
    from course_utils.data import REPO_DATA_DIR

    command = "python -m course_utils " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        mode = current_mode()  # COURSE_MODE=bogus: a one-line error, not a traceback
        out_dir = Path(args.out) if args.out else REPO_DATA_DIR / "runs" / f"{args.experiment}-{mode}"
        runs = run_experiment(args.experiment, out_dir=out_dir, seed=args.seed, only=args.only,
                              overwrite=args.overwrite, progress=not args.no_progress, command=command,
                              overrides=parse_overrides(args.overrides), save_models=args.save_models,
                              budget_minutes=args.budget)
    except (FileExistsError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130  # the shell's code for Ctrl-C; run_experiment said what was kept
    if not is_main_process():
        return 0
    for label, history in runs.items():
        print(f"{label}: final train error {1 - history.train_acc[-1]:.2%}, "
              f"test error {1 - history.val_acc[-1]:.2%}, {history.meta['wall_seconds']:.0f} s")
    print(f"run records written to {out_dir}")
    return 0
