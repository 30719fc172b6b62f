"""Training and evaluation: ``fit``, ``evaluate``, ``History``, and device / seed helpers.

``fit`` is one readable loop (forward, loss, backward, step) plus what a learner would otherwise
write by hand: a progress bar, per-step and per-epoch records, validation, checkpoints after each
epoch, a clean stop on Ctrl-C and a clear error when the loss blows up.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import random
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

HISTORY_FORMAT = "course_utils.History/1"
EPOCH_COLUMNS = ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds", "images_per_s")


def pick_device(verbose: bool = True) -> torch.device:
    """The fastest device here: a CUDA GPU, else Apple's MPS, else the CPU. Prints why."""
    if torch.cuda.is_available():
        device, reason = torch.device("cuda"), "a CUDA GPU is available"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device, reason = torch.device("mps"), "no CUDA GPU, but Apple's MPS backend is available"
    else:
        device, reason = torch.device("cpu"), "no CUDA or MPS GPU was found"
    if verbose:
        print(f"Using {describe_device(device)} because {reason}.")
    return device


def describe_device(device: torch.device | str) -> str:
    """A human name for a device, e.g. 'cuda (NVIDIA H100 80GB HBM3)' or 'cpu (2 threads)'."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random number generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def measure_training_speed(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, steps: int = 5,
                           device: torch.device | str | None = None, amp: bool | str | None = False,
                           channels_last: bool | None = False, compile: bool = False, warmup: int = 1) -> float:
    """Training images per second of ``model`` on one batch (forward, backward, SGD step).

    ``warmup`` untimed steps come first (first-call allocations, kernel selection, and with
    ``compile=True`` the compilation). ``amp`` and ``channels_last`` mean what they mean in
    ``fit``, but default to fp32 and NCHW so that a bare call measures the plain model. The
    model is trained for ``warmup + steps`` steps on the batch, so pass a throw-away model
    (this measures speed, not learning).
    """
    device = torch.device(device) if device is not None else _model_device(model)
    precision, _, memory_format = _speed_settings(device, amp, channels_last)
    model.to(device, memory_format=memory_format).train()
    images, labels = images.to(device).contiguous(memory_format=memory_format), labels.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    forward = torch.compile(model) if compile else model

    def step():
        with _autocast(device, precision):
            loss = nn.functional.cross_entropy(forward(images), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps * len(images) / (time.perf_counter() - start)


@dataclass
class History:
    """What a training run recorded; saved as a JSON run record.

    Per step (one optimiser update): ``step_loss`` and ``step_lr``.
    Per epoch: ``train_loss``, ``train_acc`` (0-1, on the augmented batches), ``val_loss``,
    ``val_acc`` (``nan`` without a validation loader), ``epoch_seconds``, ``images_per_s``.
    ``config`` says what was trained and how; ``meta`` where and when (filled in by ``fit``).
    """

    step_loss: list[float] = field(default_factory=list)
    step_lr: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    images_per_s: list[float] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def epochs_done(self) -> int:
        return len(self.train_loss)

    @property
    def steps_per_epoch(self) -> float:
        """Steps per completed epoch (for plotting epochs on a step axis)."""
        return len(self.step_loss) / max(self.epochs_done, 1)

    def final_loss(self, last_steps: int = 10) -> float:
        """Training loss at the end of the run: the mean of the last ``last_steps`` step losses
        (one step's loss is noisy: it depends on the batch)."""
        if not self.step_loss:
            raise ValueError("this History has no steps yet")
        tail = self.step_loss[-last_steps:]
        return sum(tail) / len(tail)

    def seconds_to_accuracy(self, accuracy: float) -> float | None:
        """Training seconds until the first epoch whose validation accuracy reached ``accuracy``
        (the sum of the epochs' training times up to it), or None if no epoch did."""
        elapsed = 0.0
        for seconds, reached in zip(self.epoch_seconds, self.val_acc):
            elapsed += seconds
            if reached >= accuracy:
                return elapsed
        return None

    def metric(self, name: str) -> list[float]:
        """A recorded series by name; ``train_error`` / ``val_error`` are ``1 - accuracy``."""
        if name in ("train_error", "val_error"):
            return [1.0 - acc for acc in getattr(self, name.replace("error", "acc"))]
        if name in ("step_loss", "step_lr") + EPOCH_COLUMNS:
            return list(getattr(self, name))
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}")

    def to_dict(self) -> dict:
        """The record as plain data (see ``plain_data``): what JSON and ``torch.load(weights_only=True)`` read."""
        return plain_data({"format": HISTORY_FORMAT, **{name: getattr(self, name) for name in self.__dataclass_fields__}})

    @classmethod
    def from_dict(cls, record: dict) -> "History":
        if not isinstance(record, dict):
            raise ValueError(f"a run record is a JSON object, this one is a {type(record).__name__}")
        if record.get("format") != HISTORY_FORMAT:
            raise ValueError(f"not a run record of format {HISTORY_FORMAT!r} (format={record.get('format')!r})")
        fields = {name: record[name] for name in cls.__dataclass_fields__ if name in record}
        for name, value in fields.items():
            if name in ("config", "meta"):
                if not isinstance(value, dict):
                    raise ValueError(f"'{name}' should be an object, not a {type(value).__name__}")
                continue
            if not isinstance(value, list):
                raise ValueError(f"'{name}' should be a list of numbers, not a {type(value).__name__}")
            fields[name] = [NON_FINITE.get(item, item) if isinstance(item, str) else item for item in value]
            wrong = next((item for item in fields[name] if isinstance(item, bool) or not isinstance(item, (int, float))),
                         None)
            if wrong is not None:
                raise ValueError(f"'{name}' should be a list of numbers; it holds {wrong!r}")
        return cls(**fields)

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write the run record atomically (a temporary file renamed into place), as strict JSON:
        NaN and infinities (a run without validation has NaN accuracies) are written as the
        strings "NaN", "Infinity" and "-Infinity", which every JSON reader accepts and
        ``load_json`` reads back as numbers."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(_name_non_finite(self.to_dict()), indent=1, allow_nan=False))
        os.replace(temporary, path)
        return path

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> "History":
        path = Path(path)
        try:
            record = json.loads(path.read_text())
            return cls.from_dict(record)
        except (OSError, json.JSONDecodeError, ValueError, TypeError) as error:
            raise ValueError(f"{path} is not a readable run record: {error}") from None


METRICS = ("step_loss", "step_lr") + EPOCH_COLUMNS + ("train_error", "val_error")


NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _name_non_finite(value):
    """NaN and infinities replaced by their names (strict JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _name_non_finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_name_non_finite(item) for item in value]
    return value


def plain_data(value):
    """``value`` with every part converted to plain Python data: numbers, strings, lists, dicts, None.

    Run records and checkpoints must load again anywhere, and ``torch.load(weights_only=True)``
    refuses anything else (it would be unsafe to unpickle). So a NumPy number becomes a Python
    number, a one-element tensor its value, a ``Path`` or any other object its string, a tuple a list.
    """
    if isinstance(value, np.generic):  # first: np.float64 is also a Python float
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(key) if not isinstance(key, (int, float, bool)) else key: plain_data(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(item) for item in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return str(value)


class TimeBudget:
    """A number of seconds of training, shared by ``fit`` and a learning-rate schedule.

    ``fit(time_limit=budget)`` stops when the budget is spent and updates ``budget.spent`` (seconds
    of training loop in this call; evaluations and checkpoints do not count) after every step, so
    a schedule can follow the clock (``experiments.make_scheduler`` with ``budget``): the same
    recipe then ends on time on a fast machine and on a slow one, only with more or fewer steps.
    """

    def __init__(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"a time budget must be a positive number of seconds, got {seconds!r}")
        self.seconds = float(seconds)
        self.spent = 0.0

    @property
    def fraction(self) -> float:
        """How much of the budget is spent, from 0 to 1."""
        return min(self.spent / self.seconds, 1.0)

    def __repr__(self) -> str:
        return f"TimeBudget(seconds={self.seconds:g}, spent={self.spent:.1f})"


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; ``.history`` holds the record up to that step."""

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history


def fit(
    model: nn.Module,
    train_loader: Iterable,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scheduler_interval: str = "epoch",
    val_loader: Iterable | None = None,
    device: torch.device | str | None = None,
    amp: bool | str | None = None,
    channels_last: bool | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    history: History | None = None,
    progress: bool = True,
    config: dict | None = None,
    sync_batchnorm: bool = False,
    compile: bool = False,
    flip_tta: bool = False,
    time_limit: float | TimeBudget | None = None,
) -> History:
    """Train ``model`` until ``epochs`` epochs are done; return the ``History``.

    Args:
        train_loader: yields ``(images, labels)`` batches, e.g. a ``TensorLoader``. If it has
            ``set_epoch`` it is called before each epoch, so shuffling and augmentation depend
            only on the epoch (repeatable and resumable).
        scheduler: stepped once per epoch (``scheduler_interval="epoch"``, e.g. StepLR) or once
            per optimiser step (``"step"``, e.g. OneCycleLR).
        amp: the precision, chosen by ``choose_precision`` (None: bf16 or fp16 with a gradient
            scaler on CUDA by the GPU's capability, fp32 elsewhere; True, False, "bf16", "fp16",
            "fp32" to choose). ``history.config["precision"]`` records what was used.
        channels_last: NHWC memory layout; on by default for CUDA, off elsewhere (True to try it).
        checkpoint_path: if given, a checkpoint is written (atomically) after every epoch.
        history: a History to continue (from ``load_checkpoint``); training resumes at its epoch.
        config: extra facts to store in ``history.config`` (the experiment, the data size...).
        sync_batchnorm: with several processes, compute BatchNorm statistics over the global batch
            (``nn.SyncBatchNorm``; PyTorch supports it on GPUs only).
        compile: train through ``torch.compile(model)``. The first steps are slow (compiling
            takes seconds to minutes); it pays off only for long runs. ``model`` itself stays
            the plain module, so checkpoints and ``evaluate`` are unchanged.
        flip_tta: validate with test-time flip averaging (see ``evaluate``).
        time_limit: stop after the step that brings this call's training time past this many
            seconds (or this ``TimeBudget``, which fit keeps up to date for a schedule that
            follows the clock); the partial epoch is recorded and ``history.meta["stopped"]``
            says why.

    Under ``torchrun`` (an initialised process group) the model is wrapped in
    DistributedDataParallel; losses and accuracies are averaged over all processes, so every
    process records the same History, and only process 0 shows progress and writes checkpoints.
    Create the loaders after the process group exists (``training.start_process_group()``), so
    that each process loads its own part of the data.

    Ctrl-C (KeyboardInterrupt) stops after the current step and returns the History so far; the
    last checkpoint stays the last complete epoch. A NaN/inf loss raises ``TrainingDiverged``.
    """
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
    if _len_or_none(train_loader) == 0:
        raise ValueError("the training loader yields no batches (no images, or fewer than one batch with "
                         "drop_last=True): check the data set and the batch size")
    if checkpoint_path is not None:
        _check_writable(Path(checkpoint_path))
    device = torch.device(device) if device is not None else _model_device(model)
    precision, use_channels_last, memory_format = _speed_settings(device, amp, channels_last)
    # fp16's range is small: scale the loss up before backward() so that small gradients do not
    # round to zero, and unscale them before the step (skipping a step whose gradients overflowed).
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    model.to(device=device, memory_format=memory_format)
    if launched_by_torchrun() and not is_distributed():
        start_process_group()
    distributed = is_distributed()
    if distributed and sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # The wrapper averages gradients across processes during backward(); `model` stays the plain one.
    trained = _wrap_distributed(model, device) if distributed else model
    if compile:
        trained = torch.compile(trained)
    main = is_main_process()

    history = history if history is not None else History()
    history.config.update(_run_config(model, train_loader, optimizer, scheduler, epochs, precision,
                                      use_channels_last, compile, flip_tta, config))
    history.meta.update(_run_meta(device))
    start_epoch = history.epochs_done
    started = time.perf_counter()

    steps_per_epoch = _len_or_none(train_loader)  # None for a loader without len(): a bar without total
    total_steps = (epochs - start_epoch) * steps_per_epoch if steps_per_epoch is not None else None
    bar = _progress_bar(total=total_steps, enabled=progress and main)
    budget = TimeBudget(time_limit) if isinstance(time_limit, (int, float)) else time_limit
    training_seconds = 0.0  # of this call, for the time budget
    out_of_time = False
    losses = _StepLosses(history, STEPS_PER_LOSS_READ.get(device.type, 1), distributed)
    checked_labels = False
    epoch, steps_before_epoch = start_epoch, len(history.step_loss)  # for a Ctrl-C before the first step
    try:
        for epoch in range(start_epoch, epochs):
            steps_before_epoch = len(history.step_loss)
            if hasattr(train_loader, "set_epoch"):
                train_loader.set_epoch(epoch)
            elif hasattr(getattr(train_loader, "sampler", None), "set_epoch"):
                train_loader.sampler.set_epoch(epoch)  # a DataLoader with a DistributedSampler
            model.train()
            epoch_start = time.perf_counter()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.int64)
            seen = torch.zeros((), device=device, dtype=torch.int64)
            images_this_epoch = 0  # on the host, for the progress bar
            for images, labels in train_loader:
                images = images.to(device, non_blocking=True, memory_format=memory_format)
                labels = labels.to(device, non_blocking=True)
                with _autocast(device, precision):
                    logits = trained(images)
                    if not checked_labels:  # once: a label the model has no output for is a data error
                        _check_labels(labels, logits.shape[1])
                        checked_labels = True
                    loss = loss_fn(logits, labels)
                history.step_lr.append(optimizer.param_groups[0]["lr"])
                losses.add(loss.detach(), epoch)  # reads (and checks) every few steps, before this update

                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()  # without fp16 the scaler is off and passes everything through
                scaler.step(optimizer)
                scaler.update()
                if budget is not None:  # before the scheduler, which may follow the clock
                    budget.spent = training_seconds + time.perf_counter() - epoch_start
                if scheduler is not None and scheduler_interval == "step":
                    scheduler.step()

                loss_sum += loss.detach() * len(labels)
                correct += (logits.argmax(dim=1) == labels).sum()
                seen += len(labels)
                images_this_epoch += len(labels)
                bar.update(1)
                if losses.last is not None:
                    bar.set_postfix(epoch=epoch + 1, loss=f"{losses.last:.3f}",
                                    img_per_s=f"{images_this_epoch / (time.perf_counter() - epoch_start):.0f}")
                if budget is not None and budget.spent >= budget.seconds:
                    out_of_time = True
                    break

            losses.read(epoch)  # the epoch's last losses, before its records
            if scheduler is not None and scheduler_interval == "epoch":
                scheduler.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - epoch_start
            training_seconds += seconds

            if val_loader is not None:
                result = evaluate(model, val_loader, device=device, amp=precision, channels_last=use_channels_last,
                                  flip_tta=flip_tta)
                val_loss, val_acc = result.loss, result.accuracy
            else:
                val_loss = val_acc = float("nan")
            if distributed:
                for total in (loss_sum, correct, seen):
                    dist.all_reduce(total)  # sums over processes: the whole epoch's numbers
            seen = int(seen)
            history.train_loss.append((loss_sum / max(seen, 1)).item())
            history.train_acc.append(correct.item() / max(seen, 1))
            history.val_loss.append(val_loss)
            history.val_acc.append(val_acc)
            history.epoch_seconds.append(seconds)
            history.images_per_s.append(seen / seconds)
            history.meta["wall_seconds"] = history.meta.get("wall_seconds", 0.0) + seconds
            if main:
                bar.write(_epoch_line(history, epochs))

            if checkpoint_path is not None and main:
                from course_utils.checkpoint import save_checkpoint  # late: checkpoint imports History

                save_checkpoint(checkpoint_path, model, optimizer, scheduler, history, epoch=epoch + 1)
            if out_of_time:
                history.meta["stopped"] = f"time limit of {budget.seconds:g} s reached during epoch {epoch + 1}"
                break
    except KeyboardInterrupt:
        losses.read(None, collective=False)  # the other processes may not be at the same step
        # The History keeps whole epochs only, so fit(history=...) redoes the interrupted one with the
        # same batches. The weights did take those steps: for an exact continuation, load the last
        # checkpoint (saved at the end of the last complete epoch) before calling fit again.
        partial = len(history.step_loss) - steps_before_epoch if len(history.train_loss) == epoch else 0
        del history.step_loss[len(history.step_loss) - partial:], history.step_lr[len(history.step_lr) - partial:]
        history.meta["stopped"] = (f"interrupted (Ctrl-C) after {history.epochs_done} complete epoch(s); the "
                                   f"{partial} step(s) of the interrupted epoch were dropped from the History, "
                                   f"but the weights took them: load the last checkpoint to continue exactly")
        if main:
            bar.write(f"Interrupted: returning the History of {history.epochs_done} complete epoch(s) "
                      f"and {len(history.step_loss)} steps.")
    finally:
        bar.close()
    history.meta["fit_seconds"] = time.perf_counter() - started
    return history


# How many steps' losses fit keeps on the device before reading them. Reading a GPU tensor
# (``.item()``) makes the CPU wait until the GPU has finished all the work queued so far, so reading
# every step stalls the pipeline (airbench reads once per epoch). On a CPU reading costs nothing,
# and reading every step keeps the NaN guard exact: it stops before the bad step updates the weights.
STEPS_PER_LOSS_READ = {"cuda": 50}


class _StepLosses:
    """Per-step training losses, kept on the device and moved to ``history.step_loss`` every
    ``read_every`` steps (and at the end of each epoch), where a non-finite loss stops training."""

    def __init__(self, history: History, read_every: int, distributed: bool) -> None:
        self.history, self.read_every, self.distributed = history, read_every, distributed
        self.pending: list[torch.Tensor] = []
        self.last: float | None = None  # the latest loss read, for the progress bar

    def add(self, loss: torch.Tensor, epoch: int) -> None:
        """Keep one step's loss (called after its forward pass, before its update)."""
        self.pending.append(loss)
        if len(self.pending) >= self.read_every:
            self.read(epoch, current_step_applied=False)

    def read(self, epoch: int | None, current_step_applied: bool = True, collective: bool = True) -> None:
        """Move the kept losses to the History (averaged over processes when ``collective``);
        raise ``TrainingDiverged`` if one is NaN or infinite."""
        if not self.pending:
            return
        values = torch.stack(self.pending).float()
        self.pending.clear()
        if self.distributed and collective:
            values = _global_mean(values)
        values = values.tolist()
        first_step = len(self.history.step_loss) + 1
        self.history.step_loss.extend(values)
        self.last = values[-1]
        bad = next((index for index, value in enumerate(values) if not math.isfinite(value)), None)
        if bad is None or epoch is None:
            return
        step = first_step + bad
        lr = self.history.step_lr[step - 1]
        applied = len(values) - bad - (0 if current_step_applied else 1)  # updates from the bad step on
        state = ("The weights are those before that step, still finite." if applied == 0 else
                 f"The weights were updated {applied} time(s) from that step on and may not be finite: "
                 f"load the last checkpoint before training on.")
        raise TrainingDiverged(
            f"the loss became {values[bad]} at step {step} (epoch {epoch + 1}) with learning rate {lr:g}. "
            f"Lower the learning rate (try {lr / 10:g}) and train again. {state}",
            self.history,
        )


@dataclass
class Evaluation:
    """Result of ``evaluate``: mean loss, accuracy (0-1), per-class accuracy, confusion matrix.

    ``confusion_matrix[i, j]`` counts images of true class i predicted as class j.
    """

    loss: float
    accuracy: float
    per_class_accuracy: torch.Tensor
    confusion_matrix: torch.Tensor

    def __repr__(self) -> str:
        return f"Evaluation(loss={self.loss:.4f}, accuracy={self.accuracy:.2%}, images={int(self.confusion_matrix.sum())})"


def evaluate(
    model: nn.Module,
    loader: Iterable,
    *,
    device: torch.device | str | None = None,
    amp: bool | str | None = None,
    channels_last: bool | None = None,
    flip_tta: bool = False,
) -> Evaluation:
    """Loss and accuracy of ``model`` over ``loader``, in eval mode (BatchNorm uses its running
    statistics) and inference mode (no gradients). The model's train/eval mode is restored after.

    ``flip_tta``: test-time augmentation by horizontal flip. Each image is classified as it is
    and mirrored, and the two logit vectors are averaged: a mirrored cat is still a cat, and the
    two views' errors partly cancel. It costs a second forward pass.
    """
    device = torch.device(device) if device is not None else _model_device(model)
    precision, use_channels_last, memory_format = _speed_settings(device, amp, channels_last)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    was_training = model.training
    model.eval()
    loss_sum, confusion = 0.0, None
    with torch.inference_mode():
        for images, labels in loader:
            images = images.to(device, non_blocking=True, memory_format=memory_format)
            labels = labels.to(device, non_blocking=True)
            with _autocast(device, precision):
                logits = model(images)
                if flip_tta:
                    logits = (logits + model(images.flip(3))) / 2  # dim 3 = width: a left-right mirror
            loss_sum += loss_fn(logits.float(), labels).item()
            num_classes = logits.shape[1]
            if confusion is None:
                confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
            pairs = labels * num_classes + logits.argmax(dim=1)
            confusion += torch.bincount(pairs, minlength=num_classes**2).view(num_classes, num_classes)
    model.train(was_training)
    if confusion is None:
        raise ValueError("the loader gave no batches; nothing to evaluate")
    if getattr(loader, "world_size", 1) > 1:  # each process saw its own part of the data
        totals = torch.cat([confusion.flatten().double(), torch.tensor([loss_sum], device=device, dtype=torch.float64)])
        dist.all_reduce(totals)
        confusion = totals[:-1].round().long().view_as(confusion)
        loss_sum = totals[-1].item()
    confusion = confusion.cpu()
    total = int(confusion.sum())
    per_class = confusion.diag() / confusion.sum(dim=1).clamp(min=1)
    return Evaluation(loss_sum / total, int(confusion.diag().sum()) / total, per_class, confusion)


def is_distributed() -> bool:
    """True inside a process group (e.g. started by ``torchrun``)."""
    return dist.is_available() and dist.is_initialized()


def launched_by_torchrun() -> bool:
    """True in a process started by ``torchrun`` (it sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def start_process_group() -> None:
    """Join the process group ``torchrun`` set up: NCCL between GPUs, gloo between CPU processes."""
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


def stop_process_group() -> None:
    """Leave the process group at the end of a run that succeeded on every process.

    The barrier comes first so that no process tears down its connections while another is still
    finishing (writing records on a busy machine): gloo can then abort the late process with
    SIGABRT ("terminate called without an active exception"). Do not call it after an error: the
    other processes may be waiting in a collective that will never match; torchrun stops them."""
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True for process 0, or when there is only one process: the one that prints and writes files."""
    return not is_distributed() or dist.get_rank() == 0


def _wrap_distributed(model: nn.Module, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    if device.type != "cuda":
        return DistributedDataParallel(model)
    return DistributedDataParallel(model, device_ids=[device.index if device.index is not None else torch.cuda.current_device()])


def _global_mean(value: torch.Tensor) -> torch.Tensor:
    value = value.clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def choose_precision(device: torch.device | str, amp: bool | str | None = None) -> str:
    """The arithmetic of training and evaluation on ``device``: "bf16", "fp16" or "fp32".

    ``amp=None`` (the default) chooses by what the hardware does natively. On a CUDA GPU: bf16
    autocast where the GPU computes in bf16 natively (compute capability 8.0 and later: A100,
    RTX 30xx/40xx, L4, H100), else fp16 autocast with a gradient scaler (T4 7.5, V100 7.0: bf16
    there is emulated and slow, and fp16's small range needs the scaler to keep small gradients
    from rounding to zero). Elsewhere (CPU, Apple MPS) fp32: a CPU without bf16 arithmetic ran
    bf16 at half the speed of fp32. ``amp=True`` asks for 16 bits anyway (bf16 on a CPU, the
    GPU's choice above on CUDA), ``amp=False`` for fp32, and "bf16" / "fp16" / "fp32" for that one.
    """
    device = torch.device(device)
    if isinstance(amp, str):
        if amp not in AUTOCAST_DTYPES:
            raise ValueError(f"amp={amp!r} is not a precision; use one of {', '.join(AUTOCAST_DTYPES)}, "
                             f"True, False or None (automatic)")
        return amp
    if amp is False or (amp is None and device.type != "cuda"):
        return "fp32"
    if device.type != "cuda":
        return "bf16"
    major, _minor = torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16"


def _speed_settings(device: torch.device, amp: bool | str | None, channels_last: bool | None):
    """The precision (``choose_precision``) and channels_last: NHWC on by default on CUDA (faster
    there with tensor cores), off elsewhere."""
    precision = choose_precision(device, amp)
    use_channels_last = device.type == "cuda" if channels_last is None else channels_last
    memory_format = torch.channels_last if use_channels_last else torch.contiguous_format
    return precision, use_channels_last, memory_format


def _autocast(device: torch.device, precision: str):
    dtype = AUTOCAST_DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def check_folder_writable(folder: Path, what: str) -> None:
    """Raise before any work if ``what`` (e.g. "the checkpoint x.pt") could not be written into
    ``folder``. Missing folders are created when writing, so the first existing one is checked."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        raise ValueError(f"cannot write {what}: {existing} is not writable; choose another folder")


def _check_writable(path: Path) -> None:
    """Fail before training, not after the first epoch, when a checkpoint could not be written."""
    if path.is_dir():
        raise ValueError(f"checkpoint_path {path} is a folder; give a file name, e.g. {path / 'model.pt'}")
    check_folder_writable(path.parent, f"the checkpoint {path}")


def _check_labels(labels: torch.Tensor, num_classes: int) -> None:
    if labels.dtype.is_floating_point or labels.dim() != 1 or len(labels) == 0:
        return  # soft targets (a distribution per image) are the loss function's business
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"the labels must be class indices 0-{num_classes - 1} for this model's {num_classes} "
                         f"outputs; the first batch has {labels.dtype} labels from {labels.min().item()} to "
                         f"{labels.max().item()}. Check the data set's labels (or the model's num_classes).")


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _len_or_none(loader: Iterable) -> int | None:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


def _progress_bar(total: int | None, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="step", dynamic_ncols=True)


def _epoch_line(history: History, epochs: int) -> str:
    epoch = history.epochs_done
    line = (f"epoch {epoch}/{epochs}: train loss {history.train_loss[-1]:.4f}, "
            f"train acc {history.train_acc[-1]:.2%}")
    if not math.isnan(history.val_acc[-1]):
        line += f", val loss {history.val_loss[-1]:.4f}, val acc {history.val_acc[-1]:.2%}"
    return line + f", {history.epoch_seconds[-1]:.1f} s, {history.images_per_s[-1]:.0f} images/s"


def _run_config(model, loader, optimizer, scheduler, epochs, precision, channels_last, compile, flip_tta,
                extra) -> dict:
    group = optimizer.param_groups[0]
    config = {
        "model": getattr(model, "arch", {"name": type(model).__name__}),
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "epochs": epochs,
        "batch_size": getattr(loader, "batch_size", None),
        "train_images": len(getattr(loader, "images", getattr(loader, "dataset", ()))) or None,
        "optimizer": type(optimizer).__name__,
        "lr": group.get("initial_lr", group["lr"]),
        "momentum": group.get("momentum"),
        "nesterov": group.get("nesterov"),
        "weight_decay": group.get("weight_decay"),
        "scheduler": type(scheduler).__name__ if scheduler is not None else None,
        "precision": precision,
        "channels_last": channels_last,
        "compile": compile,
        "flip_tta": flip_tta,
        "cutout": getattr(loader, "cutout", None),
    }
    config.update(extra or {})
    return config


def _run_meta(device: torch.device) -> dict:
    from course_utils.modes import current_mode

    return {
        "mode": current_mode(),
        "device": describe_device(device),
        "torch": str(torch.__version__),  # a TorchVersion object would not load with weights_only
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "git_commit": git_commit(),
    }


@functools.cache
def git_commit() -> str | None:
    """The repository's commit (with '+dirty' for uncommitted changes) when this process first
    asked, or None. Cached: the code a process runs is what it imported at its start, so later
    commits or edits during a long run must not change what its records claim.

    ``COURSE_GIT_COMMIT``, when set, wins: a copy of the code sent to another machine (a GPU
    machine, say) may carry no .git folder, or a stale one that would name the wrong commit.
    """
    if os.environ.get("COURSE_GIT_COMMIT"):
        return os.environ["COURSE_GIT_COMMIT"]
    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")
