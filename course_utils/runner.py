"""Training an experiment's runs: ``run_experiment`` (what a notebook and ``python -m course_utils run``
call) and ``train_run``, one run.

    runs = runner.run_experiment("degradation", mode="quick", out_dir="data/runs/degradation-quick")

An experiment's runs and settings come from its entry of ``experiments.EXPERIMENTS``; the run records
(their keys in ``records.CONFIG`` and ``records.META``) go where ``records.record_paths`` says.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from course_utils.checkpoint import save_checkpoint
from course_utils.data import Cifar10, Loader, TensorLoader, load_cifar10
from course_utils.devices import pick_device
from course_utils.distributed import is_distributed, is_main_process
from course_utils.estimates import (epochs_for_budget, estimate_epoch_seconds, format_minutes, run_seconds,
                                    time_budget_minutes)
from course_utils.experiments import get_settings, run_specs
from course_utils.history import History
from course_utils.modes import RunSpec, Settings, check_setting, current_mode, format_settings
from course_utils.records import check_neighbours, claimed, record_paths
from course_utils.schedules import make_scheduler, schedule_interval, schedule_of
from course_utils.training import TimeBudget, evaluate, fit, seed_everything


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
    specs = _chosen_runs(experiment, settings, overrides, only)
    labels = [spec.label for spec in specs]
    paths = record_paths(experiment, labels, out_dir, save_models, overwrite)
    check_neighbours(experiment, out_dir, labels, seed, mode, overrides)
    is_main = is_main_process()  # under torchrun, only process 0 prints and writes records
    # Claim the record files first: a second run started into the same folder stops here, before it trains.
    with claimed(paths.values() if is_main else ()):
        device = torch.device(device) if device is not None else pick_device(verbose=is_main)
        data = (data if data is not None else load_cifar10()).subset(settings.train_size, settings.test_size, seed)
        estimates = estimate_epoch_seconds(specs, settings, device=device, data=data, seed=seed)
        choice = _budget_choice(budget, estimates, settings.epochs)
        if choice is not None:
            settings = replace(settings, epochs=choice["epochs"])
        if is_main:
            _print_plan(experiment, mode, settings, estimates, device, choice)
        runs = {}
        for spec in specs:
            if is_main:
                print(f"--- {spec.label} ---")
            model = spec.build_model(settings, seed)
            history = train_run(spec, settings, data, device=device, seed=seed, progress=progress, model=model)
            if history.interrupted:  # Ctrl-C stops the whole experiment: no next run, no record of this one
                if is_main:
                    print(f"Interrupted during {spec.label}: {experiment} stopped; the records of its "
                          f"{len(runs)} complete run(s) are kept" + (f" in {out_dir}" if out_dir else "") + ".")
                raise KeyboardInterrupt
            if keep_models is not None:
                keep_models[spec.label] = model
            history.meta["mode"] = mode
            history.config.update(experiment=experiment, run=spec.label, command=command, overrides=overrides,
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
    """The runs ``run_experiment`` would train with these arguments, checked as it checks them: an
    unknown label in ``only``, and a ``schedule`` override that the runs would not train with, are
    ValueErrors before anything is trained."""
    overrides = checked_overrides(overrides)
    return _chosen_runs(experiment, apply_overrides(get_settings(experiment, mode), overrides), overrides, only)


def _chosen_runs(experiment: str, settings: Settings, overrides: dict, only: list[str] | None) -> list[RunSpec]:
    specs = run_specs(experiment, settings)
    _check_schedule_applies(experiment, specs, overrides)
    if only is None:
        return specs
    unknown = sorted(set(only) - {spec.label for spec in specs})
    if unknown:
        raise ValueError(f"{experiment} has no run(s) {unknown}; its runs: {[spec.label for spec in specs]}")
    return [spec for spec in specs if spec.label in only]


def _check_schedule_applies(experiment: str, specs: list[RunSpec], overrides: dict) -> None:
    """``--set schedule=...`` must be the schedule every run trains with: experiments whose runs set their
    own (lr-decay compares two, the ablation switches one on) would ignore it and still record it."""
    if "schedule" not in overrides:
        return
    own = [spec for spec in specs if "schedule" in dict(spec.changes)]
    if own:
        raise ValueError(f"schedule={overrides['schedule']!r} does not apply to {experiment}: its runs set their own "
                         f"schedules ({', '.join(f'{spec.label}: ' + dict(spec.changes).get('schedule', 'the default') for spec in specs)}). "
                         f"Leave schedule unset for {experiment}")


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
    expected = {label: run_seconds(seconds, settings) for label, seconds in estimates.items()}
    print(f"expected on {device.type} (a few timed steps per run"
          + ("; plus compilation" if settings.compile else "") + "): "
          + ", ".join(f"{label} {format_minutes(seconds)}" for label, seconds in expected.items())
          + f"; all {format_minutes(sum(expected.values()))}")
    if choice:
        print(f"time budget: {choice['why']}")


def train_run(spec: RunSpec, settings: Settings, data: Cifar10, *, device: torch.device, seed: int = 0,
              progress: bool = True, model: nn.Module | None = None,
              make_train_loader: Callable[..., Loader] = TensorLoader) -> History:
    """Train one run of an experiment: SGD with momentum and weight decay, cross-entropy loss,
    and whichever fast-training options ``settings`` (with the run's changes) switch on.

    ``model``: the network to train (default: ``spec.build_model(settings, seed)``).
    ``make_train_loader``: builds the loader of training batches, called like ``TensorLoader`` with the
    settings' batch size, the seed and Cutout (a benchmark's subclass draws other batches from some epoch on).
    """
    if model is None:
        model = spec.build_model(settings, seed)
    settings = spec.settings(settings)
    seed_everything(seed)  # the same random state for every run, whoever built the model
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                                weight_decay=settings.weight_decay, nesterov=settings.nesterov)
    train_loader = make_train_loader(data.train_images, data.train_labels, batch_size=settings.batch_size,
                                     device=device, seed=seed, cutout=settings.cutout)
    test_loader = TensorLoader(data.test_images, data.test_labels, batch_size=500, augment=False,
                               shuffle=False, device=device)
    sample_val = settings.val_size is not None and settings.val_size < len(data.test_labels)
    # The per-epoch sample is the same for every seed (seed 0), so curves of different runs compare.
    val_data = data.subset(None, settings.val_size, seed=0) if sample_val else data
    val_loader = TensorLoader(val_data.test_images, val_data.test_labels, batch_size=500, augment=False,
                              shuffle=False, device=device) if sample_val else test_loader
    budget = (TimeBudget(settings.time_budget, images=settings.image_budget)
              if settings.time_budget or settings.image_budget else None)
    scheduler = make_scheduler(optimizer, settings, steps_per_epoch=len(train_loader), budget=budget)
    history = fit(model, train_loader, epochs=settings.epochs, optimizer=optimizer, scheduler=scheduler,
                  scheduler_interval=schedule_interval(schedule_of(settings)), val_loader=val_loader, device=device,
                  speed=settings.speed, time_limit=budget, flip_tta=settings.flip_tta,
                  loss_fn=nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing), progress=progress,
                  config={"schedule": schedule_of(settings), "seed": seed,
                          "test_images": len(data.test_images), "label_smoothing": settings.label_smoothing,
                          "warmup_fraction": settings.warmup_fraction, "time_budget": settings.time_budget,
                          "image_budget": settings.image_budget,
                          "val_images": len(val_data.test_labels)})
    # One more test of all test images after a run that tested a sample each epoch, or that tests its
    # final weights with more views than the per-epoch tests use.
    if (sample_val or settings.translate_tta) and not history.interrupted:
        started = time.perf_counter()
        final = evaluate(model, test_loader, device=device, speed=settings.speed, flip_tta=settings.flip_tta,
                         translate_tta=settings.translate_tta)
        history.meta["final_test"] = {"images": len(data.test_labels), "accuracy": final.accuracy,
                                      "loss": final.loss, "flip_tta": settings.flip_tta,
                                      "translate_tta": settings.translate_tta,
                                      "seconds": round(time.perf_counter() - started, 2)}
    return history
