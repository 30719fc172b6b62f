"""Training and evaluation: ``fit``, ``train_one_epoch``, ``record_epoch``, ``evaluate``.

``fit`` is the loop a learner writes by hand in notebook 05 (forward, loss, backward, step, once per
batch; validation once per epoch), in three pieces: ``fit`` sets up and loops over epochs,
``train_one_epoch`` is the inner loop, ``record_epoch`` adds the epoch's row to the ``History``.
Around them it keeps what a learner would otherwise write again each time: a progress bar, per-step
and per-epoch records, checkpoints after each epoch, a clean stop on Ctrl-C, a clear error when the
loss blows up, and a time budget.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import random
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
from torch import nn

from course_utils.checkpoint import checkpoint_target, save_checkpoint
from course_utils.data import EpochLoader, Loader, TensorLoader
from course_utils.devices import PLAIN, Speed, autocast, describe_device, model_device
from course_utils.distributed import global_mean, global_sum, is_distributed, is_main_process, world_size, wrap_model
from course_utils.history import History, plain_data

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ProgressBar(Protocol):
    """What ``fit`` asks of its progress bar (a tqdm bar, in a notebook or a terminal)."""

    def update(self, n: int = 1) -> object: ...

    def set_postfix(self, **values) -> object: ...

    def write(self, text: str) -> object: ...


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random number generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


class TimeBudget:
    """A number of seconds of training, and optionally of training images, shared by ``fit`` and a
    learning-rate schedule.

    ``fit(time_limit=budget)`` stops when the budget is spent and updates ``budget.spent`` (seconds
    of training loop in this call; evaluations and checkpoints do not count) and ``budget.images_done``
    after every step, so a schedule can follow the clock (``schedules.make_scheduler`` with
    ``budget``): the same recipe then ends on time on a fast machine and on a slow one, only with more
    or fewer steps. ``images`` caps the work instead: the run ends after that many training images
    (summed over processes) even where the clock would allow more, so a fast hour does no more than a
    slow one (benchmarks/laptop_recipe.py). With both, whichever is spent first ends the run.
    """

    def __init__(self, seconds: float | None, images: int | None = None) -> None:
        if seconds is None and images is None:
            raise ValueError("a budget needs seconds, images or both")
        if seconds is not None and not seconds > 0:
            raise ValueError(f"a time budget must be a positive number of seconds, got {seconds!r}")
        if images is not None and not images > 0:
            raise ValueError(f"an image budget must be a positive number of training images, got {images!r}")
        self.seconds = float(seconds) if seconds is not None else None
        self.images = int(images) if images is not None else None
        self.spent = 0.0
        self.images_done = 0

    @property
    def fraction(self) -> float:
        """How much of the budget is spent, from 0 to 1: of the time or of the images, whichever is further."""
        time_part = self.spent / self.seconds if self.seconds else 0.0
        image_part = self.images_done / self.images if self.images else 0.0
        return min(max(time_part, image_part), 1.0)

    @property
    def stop_reason(self) -> str | None:
        """``"time_limit"`` or ``"image_limit"`` once that part is spent, None before."""
        if self.images is not None and self.images_done >= self.images:
            return "image_limit"
        if self.seconds is not None and self.spent >= self.seconds:
            return "time_limit"
        return None

    def __repr__(self) -> str:
        seconds = f"{self.seconds:g}" if self.seconds is not None else "None"
        images = f", images={self.images}, images_done={self.images_done}" if self.images is not None else ""
        return f"TimeBudget(seconds={seconds}, spent={self.spent:.1f}{images})"


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; ``.history`` holds the record up to that step."""

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history


@dataclass
class TrainingStep:
    """One optimiser update, with what ``fit`` sets up once: the model as trained (wrapped for
    several processes, compiled), the optimiser, the loss, the precision and the layout."""

    model: nn.Module  # what forward() runs: the plain model, or its DDP / compiled wrapper
    optimizer: torch.optim.Optimizer
    loss_fn: LossFunction
    device: torch.device
    precision: str  # "bf16", "fp16" or "fp32"
    memory_format: torch.memory_format
    cuda_graphs: bool = False  # the compiled model replays CUDA graphs (torch.compile "reduce-overhead")
    batch_checked: bool = False
    # fp16's range is small: the scaler multiplies the loss before backward() so that small gradients
    # do not round to zero, and divides them again before the step (skipping a step that overflowed).
    scaler: torch.amp.GradScaler = field(init=False)

    def __post_init__(self) -> None:
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def to_device(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (images.to(self.device, non_blocking=True, memory_format=self.memory_format),
                labels.to(self.device, non_blocking=True))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits and the loss of one batch."""
        if self.cuda_graphs:  # a new step: the graphs may reuse the memory of the last step's outputs
            torch.compiler.cudagraph_mark_step_begin()
        if not self.batch_checked:  # once: images the model cannot take are a data error, said as one
            check_images(images, "training")
        with autocast(self.device, self.precision):
            logits = self.model(images)
            if not self.batch_checked:  # once: a label the model has no output for is a data error
                check_labels(labels, logits.shape[1], "training",
                             class_indices=isinstance(self.loss_fn, nn.CrossEntropyLoss))
                self.batch_checked = True
            return logits, self.loss_fn(logits, labels)

    def update(self, loss: torch.Tensor) -> None:
        """Backward and one optimiser step (the scaler passes everything through without fp16)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()


@dataclass
class EpochTotals:
    """What one epoch of training added up, kept on the device until the epoch ends."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: torch.Tensor
    seconds: float = 0.0
    out_of_time: bool = False

    @classmethod
    def zeros(cls, device: torch.device) -> "EpochTotals":
        return cls(torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.int64),
                   torch.zeros((), device=device, dtype=torch.int64))

    def add(self, logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> None:
        self.loss_sum += loss.detach() * len(labels)
        self.correct += (logits.argmax(dim=1) == labels).sum()
        self.seen += len(labels)


@dataclass
class SchedulerSteps:
    """A learning-rate scheduler and when ``fit`` steps it: after every optimiser update
    (``interval="step"``, e.g. OneCycleLR) or after every epoch (``"epoch"``, e.g. StepLR). The one
    place a scheduler is stepped; ReduceLROnPlateau gets the loss it watches."""

    scheduler: torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
    interval: str = "epoch"

    def after_update(self) -> None:
        if self.scheduler is not None and self.interval == "step":
            self.scheduler.step()

    def after_epoch(self, totals: EpochTotals, validation: Evaluation | None) -> None:
        if self.scheduler is None or self.interval != "epoch":
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):  # steps on the loss it watches
            self.scheduler.step(validation.loss if validation is not None
                                else (totals.loss_sum / max(int(totals.seen), 1)).item())
        else:
            self.scheduler.step()


def fit(
    model: nn.Module,
    train_loader: Loader,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scheduler_interval: str = "epoch",
    val_loader: Loader | None = None,
    device: torch.device | str | None = None,
    speed: Speed | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    loss_fn: LossFunction | None = None,
    history: History | None = None,
    progress: bool = True,
    config: dict | None = None,
    sync_batchnorm: bool = False,
    flip_tta: bool = False,
    time_limit: float | TimeBudget | None = None,
) -> History:
    """Train ``model`` until ``epochs`` epochs are done; return the ``History``.

    Args:
        train_loader: yields ``(images, labels)`` batches, e.g. a ``TensorLoader``. If it has
            ``set_epoch`` it is called before each epoch, so shuffling and augmentation depend
            only on the epoch (repeatable and resumable).
        val_loader: evaluated after every epoch (``History.val_loss`` / ``val_acc``). The course has no
            validation split: its notebooks pass test images, so the log line says "test".
        scheduler: stepped once per epoch (``scheduler_interval="epoch"``, e.g. StepLR) or once
            per optimiser step (``"step"``, e.g. OneCycleLR).
        speed: the precision, memory layout and compilation (``devices.Speed``; by default bf16
            or fp16 and channels-last on CUDA by the GPU's capability, fp32 and NCHW elsewhere).
            ``History.config`` records what was used. With ``Speed(compile=True)`` the model is
            trained through ``torch.compile``; ``model`` itself stays the plain module, so
            checkpoints and ``evaluate`` are unchanged.
        checkpoint_path: if given, a checkpoint is written (atomically) after every epoch.
        history: a History to continue (from ``load_checkpoint``); training resumes at its epoch.
        config: facts from the caller to store in ``History.config`` (the experiment, the mode...).
        sync_batchnorm: with several processes, compute BatchNorm statistics over the global batch
            (``nn.SyncBatchNorm``; PyTorch supports it on GPUs only).
        flip_tta: validate with test-time flip averaging (see ``evaluate``).
        time_limit: stop after the step that brings this call's training time past this many
            seconds (or this ``TimeBudget``, which fit keeps up to date for a schedule that
            follows the clock, and which may cap the training images too); the partial epoch is
            recorded and ``History.stop`` says why.

    Under ``torchrun`` (an initialised process group) the model is wrapped in
    DistributedDataParallel; losses and accuracies are averaged over all processes, so every
    process records the same History, and only process 0 shows progress and writes checkpoints.
    Start the process group before calling fit (``distributed.start_process_group()``; the command
    line does it), and create the loaders after it, so that each process loads its own part.

    Ctrl-C (KeyboardInterrupt) stops after the current step and returns the History so far; the
    last checkpoint stays the last complete epoch. A NaN/inf loss raises ``TrainingDiverged``.
    """
    _check_fit_inputs(model, train_loader, optimizer, scheduler, scheduler_interval, epochs, history, checkpoint_path)
    device = torch.device(device) if device is not None else model_device(model)
    speed = speed if speed is not None else Speed()
    step = _prepare_step(model, optimizer, loss_fn, device, speed, sync_batchnorm)
    schedule = SchedulerSteps(scheduler, scheduler_interval)
    run_config = _run_config(model, train_loader, optimizer, scheduler, epochs, step, speed, flip_tta, config)
    if history is not None:
        _check_continuation(history, run_config)
        if history.interrupted:  # continued now: it no longer ends where Ctrl-C stopped it
            del history.meta["stop_reason"]
            history.meta.pop("stopped", None)
    history = history if history is not None else History()
    history.config.update(run_config)
    history.meta.update(_run_meta(device))
    budget = TimeBudget(time_limit) if isinstance(time_limit, (int, float)) else time_limit
    losses = StepLosses(history, STEPS_PER_LOSS_READ.get(device.type, 1), is_distributed())
    bar = _progress_bar(train_loader, epochs - history.epochs_done, enabled=progress and is_main_process())
    evaluation_speed = Speed(amp=step.precision, channels_last=speed.uses_channels_last(device))
    skips_before = _cuda_graph_skips() if step.cuda_graphs else None
    started, training_seconds = time.perf_counter(), 0.0
    epoch, steps_before_epoch = history.epochs_done, len(history.step_loss)  # for a Ctrl-C before the first step
    steps_at_start = len(history.step_loss)
    try:
        for epoch in range(history.epochs_done, epochs):
            steps_before_epoch = len(history.step_loss)
            totals = train_one_epoch(step, train_loader, epoch, history=history, losses=losses, bar=bar,
                                     schedule=schedule, budget=budget, seconds_before=training_seconds)
            if totals.seen == 0:  # nothing trained: an epoch of loss 0 and accuracy 0 must not be recorded
                raise ValueError(f"the training loader yielded no batches in epoch {epoch + 1}: an iterator or a "
                                 f"generator runs out after one pass. Pass something that can be iterated again "
                                 f"each epoch (a list, a DataLoader, a TensorLoader).")
            training_seconds += totals.seconds
            validation = (evaluate(model, val_loader, device=device, speed=evaluation_speed, flip_tta=flip_tta)
                          if val_loader is not None else None)
            schedule.after_epoch(totals, validation)
            record_epoch(history, totals, validation)
            if validation is not None and not math.isfinite(validation.loss):
                _warn_non_finite_test_loss(history, epoch, bar)
            if is_main_process():
                bar.write(_epoch_line(history, epochs))
                if checkpoint_path is not None:
                    save_checkpoint(checkpoint_path, model, optimizer, scheduler, history, epoch=epoch + 1)
            if totals.out_of_time:
                _stop_on_budget(history, budget, bar, epoch, epochs, len(history.step_loss) - steps_at_start)
                break
    except KeyboardInterrupt:
        _keep_whole_epochs(history, losses, epoch, steps_before_epoch, bar)
    except Exception as error:  # whatever stopped the loop, the complete epochs' record is not lost
        if not isinstance(error, TrainingDiverged):
            _attach_history(error, history)
        raise
    finally:
        _close_at_steps_done(bar)
    history.meta["fit_seconds"] = time.perf_counter() - started
    _note_cuda_graph_skips(history, skips_before)
    return history


def _stop_on_budget(history: History, budget: TimeBudget, bar: ProgressBar, epoch: int, epochs: int,
                    steps: int) -> None:
    """Record (and say) which part of ``budget`` ended the run during ``epoch``."""
    reason = budget.stop_reason
    limit = (f"time limit of {budget.seconds:g} s" if reason == "time_limit"
             else f"image budget of {budget.images:,} training images")
    history.stop(reason, f"{limit} reached during epoch {epoch + 1}")
    if is_main_process():
        bar.write(f"Stopped by the {limit} after {steps:,} steps, during epoch {epoch + 1} of {epochs}.")


def _note_cuda_graph_skips(history: History, skips_before: int | None) -> None:
    """With CUDA graphs asked for: how many compiled graphs torch ran without them after all (it logs why)."""
    if skips_before is not None:
        history.meta["cuda_graph_skips"] = _cuda_graph_skips() - skips_before


def _cuda_graph_skips() -> int:
    """How many compiled graphs torch has run without CUDA graphs in this process (its own counter)."""
    from torch._dynamo.utils import counters  # private, but where torch counts them

    return int(counters["inductor"].get("cudagraph_skips", 0))


def train_one_epoch(step: TrainingStep, loader: Loader, epoch: int, *, history: History, losses: StepLosses,
                    bar: ProgressBar, schedule: SchedulerSteps | None = None, budget: TimeBudget | None = None,
                    seconds_before: float = 0.0) -> EpochTotals:
    """One pass over ``loader``: for each batch, the forward pass, the loss, backward and the
    optimiser step, as in notebook 05's hand-written loop, plus the per-step records (learning
    rate, loss), a per-step schedule (``schedule``) and the progress bar. Stops early when
    ``budget`` is spent."""
    if isinstance(loader, EpochLoader):  # shuffling and augmentation follow the epoch: repeatable, resumable
        loader.set_epoch(epoch)
    step.model.train()  # BatchNorm: normalise with each batch's statistics, update the running ones
    start = time.perf_counter()
    totals = EpochTotals.zeros(step.device)
    images_done = 0  # on the host, for the progress bar (reading totals.seen would wait for the GPU)
    processes = world_size()  # an image budget counts the images of every process
    for images, labels in loader:
        images, labels = step.to_device(images, labels)
        logits, loss = step.forward(images, labels)
        history.step_lr.append(step.optimizer.param_groups[0]["lr"])
        # Kept for a few steps: a CUDA graph's output is overwritten by its next replay, so keep a copy.
        try:
            losses.add(loss.detach().clone() if step.cuda_graphs else loss.detach(), epoch)
        except TrainingDiverged as error:
            if not torch.isfinite(images).all():  # the data, not the learning rate
                raise TrainingDiverged(f"the loss became NaN or infinite in epoch {epoch + 1}, and this step's batch "
                                       f"holds NaN or infinite pixel values: check the data set (a lower learning "
                                       f"rate will not help)", error.history) from None
            raise
        step.update(loss)
        if budget is not None:  # before the scheduler, which may follow the clock or the images
            budget.spent = seconds_before + time.perf_counter() - start
            budget.images_done += len(labels) * processes
        if schedule is not None:
            schedule.after_update()
        totals.add(logits, labels, loss)
        images_done += len(labels)
        bar.update(1)
        if losses.last is not None:
            bar.set_postfix(epoch=epoch + 1, loss=f"{losses.last:.3f}",
                            img_per_s=f"{images_done / (time.perf_counter() - start):.0f}")
        if budget is not None and budget.stop_reason is not None:
            totals.out_of_time = True
            break
    losses.read(epoch)  # the epoch's last losses, before its records
    if step.device.type == "cuda":
        torch.cuda.synchronize(step.device)
    totals.seconds = time.perf_counter() - start
    return totals


def record_epoch(history: History, totals: EpochTotals, validation: "Evaluation | None") -> None:
    """Add one epoch's row to ``history``: training loss and accuracy (summed over every process),
    validation loss and accuracy (NaN without validation), seconds and images per second."""
    loss_sum, correct, seen = totals.loss_sum, totals.correct, totals.seen
    if is_distributed():  # each process trained on its own part: the epoch is their sum
        loss_sum, correct, seen = global_sum(loss_sum), global_sum(correct), global_sum(seen)
    seen = max(int(seen), 1)
    history.train_loss.append((loss_sum / seen).item())
    history.train_acc.append(correct.item() / seen)
    history.val_loss.append(validation.loss if validation is not None else math.nan)
    history.val_acc.append(validation.accuracy if validation is not None else math.nan)
    history.epoch_seconds.append(totals.seconds)
    history.images_per_s.append(seen / totals.seconds)
    history.epoch_end_steps.append(len(history.step_loss))
    history.meta["wall_seconds"] = history.meta.get("wall_seconds", 0.0) + totals.seconds


def _prepare_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFunction | None,
                  device: torch.device, speed: Speed, sync_batchnorm: bool) -> TrainingStep:
    """Move the model to its device and layout, and wrap it for several processes and compilation."""
    memory_format = speed.memory_format(device)
    model.to(device=device, memory_format=memory_format)
    trained = model
    if is_distributed():
        if sync_batchnorm:
            trained = nn.SyncBatchNorm.convert_sync_batchnorm(trained)
        trained = wrap_model(trained, device)  # averages gradients across processes; `model` stays plain
    if speed.compile_mode is not None:
        trained = torch.compile(trained, mode=speed.compile_mode)
    return TrainingStep(trained, optimizer, loss_fn if loss_fn is not None else nn.CrossEntropyLoss(), device,
                        speed.precision(device), memory_format, cuda_graphs=speed.uses_cuda_graphs(device))


def _keep_whole_epochs(history: History, losses: StepLosses, epoch: int, steps_before_epoch: int,
                      bar: ProgressBar) -> None:
    """After Ctrl-C: drop the interrupted epoch's steps from the History and say so."""
    losses.read(None, collective=False)  # the other processes may not be at the same step
    # The History keeps whole epochs only, so fit(history=...) redoes the interrupted one with the
    # same batches. The weights did take those steps: for an exact continuation, load the last
    # checkpoint (saved at the end of the last complete epoch) before calling fit again.
    partial = len(history.step_loss) - steps_before_epoch if len(history.train_loss) == epoch else 0
    del history.step_loss[len(history.step_loss) - partial:], history.step_lr[len(history.step_lr) - partial:]
    history.stop("interrupted", f"interrupted (Ctrl-C) after {history.epochs_done} complete epoch(s); the "
                                f"{partial} step(s) of the interrupted epoch were dropped from the History, "
                                f"but the weights took them: load the last checkpoint to continue exactly")
    if is_main_process():
        bar.write(f"Interrupted: returning the History of {history.epochs_done} complete epoch(s) "
                  f"and {len(history.step_loss)} steps.")


# How many steps' losses fit keeps on the device before reading them. Reading a GPU tensor
# (``.item()``) makes the CPU wait until the GPU has finished all the work queued so far, so reading
# every step stalls the pipeline (airbench reads once per epoch). On a CPU reading costs nothing,
# and reading every step keeps the NaN guard exact: it stops before the bad step updates the weights.
STEPS_PER_LOSS_READ = {"cuda": 50}


class StepLosses:
    """Per-step training losses, kept on the device and moved to ``History.step_loss`` every
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
            values = global_mean(values)
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
    loader: Loader,
    *,
    device: torch.device | str | None = None,
    speed: Speed | None = None,
    flip_tta: bool = False,
    translate_tta: bool = False,
) -> Evaluation:
    """Loss and accuracy of ``model`` over ``loader``, in eval mode (BatchNorm uses its running
    statistics) and inference mode (no gradients). The model's train/eval mode is restored after.

    ``speed``: precision and layout (``devices.Speed``; compilation does not apply), by default
    chosen by the device as in ``fit``. ``flip_tta``: test-time augmentation by horizontal flip.
    Each image is classified as it is and mirrored, and the two logit vectors are averaged: a
    mirrored cat is still a cat, and the two views' errors partly cancel. It costs a second
    forward pass. ``translate_tta``: the image moved one pixel up-left and one pixel down-right is
    classified too (each also mirrored with ``flip_tta``): a 1-pixel shift is well inside the training
    crops' 4, and it costs two (with the flip four) more passes. All views' logits are averaged
    (``tta_views``). With several processes, each evaluates its own part of the data (as
    ``TensorLoader`` and ``article.article_loader`` split it) and the results are summed over all.
    """
    device = torch.device(device) if device is not None else model_device(model)
    speed = speed if speed is not None else Speed()
    precision, memory_format = speed.precision(device), speed.memory_format(device)
    was_training = model.training
    model.eval()
    loss_sum, confusion = torch.zeros((), device=device, dtype=torch.float64), None
    with torch.inference_mode():
        for images, labels in loader:
            images = images.to(device, non_blocking=True, memory_format=memory_format)
            labels = labels.to(device, non_blocking=True)
            if confusion is None:
                check_images(images, "test")
            with autocast(device, precision):
                views = tta_views(images, flip_tta, translate_tta)
                logits = model(views[0])
                if confusion is None:
                    check_labels(labels, logits.shape[1], "test")
                for view in views[1:]:
                    logits = logits + model(view)
                logits = logits / len(views)
            loss_sum += nn.functional.cross_entropy(logits.float(), labels, reduction="sum")
            if confusion is None:
                confusion = torch.zeros(logits.shape[1], logits.shape[1], dtype=torch.int64, device=device)
            confusion += _confusion(logits.argmax(dim=1), labels, logits.shape[1])
    model.train(was_training)
    if confusion is None:
        raise ValueError("the loader gave no batches; nothing to evaluate")
    if is_distributed():
        confusion, loss_sum = global_sum(confusion), global_sum(loss_sum)
    confusion = confusion.cpu()
    total = int(confusion.sum())
    per_class = confusion.diag() / confusion.sum(dim=1).clamp(min=1)
    return Evaluation(loss_sum.item() / total, int(confusion.diag().sum()) / total, per_class, confusion)


def tta_views(images: torch.Tensor, flip: bool = False, translate: bool = False) -> list[torch.Tensor]:
    """The views of a batch of images that ``evaluate`` classifies and averages: the images; with
    ``translate`` also moved one pixel down-right and one up-left (the new border row and column
    mirror their neighbours); with ``flip`` each of those mirrored left-right too."""
    views = [images]
    if translate:
        height, width = images.shape[-2:]
        padded = nn.functional.pad(images, (1, 1, 1, 1), mode="reflect")
        views += [padded[..., :height, :width], padded[..., 2:, 2:]]  # down-right, up-left
    return views + [view.flip(3) for view in views] if flip else views  # dim 3 = width: a mirror


def _confusion(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[i, j]`` = how many images of class i were predicted as class j."""
    pairs = labels * num_classes + predictions
    return torch.bincount(pairs, minlength=num_classes**2).view(num_classes, num_classes)


def measure_training_speed(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, steps: int = 5,
                           device: torch.device | str | None = None, speed: Speed = PLAIN,
                           warmup: int = 1) -> float:
    """Training images per second of ``model`` on one batch (forward, backward, SGD step).

    ``warmup`` untimed steps come first (first-call allocations, kernel selection, and with
    ``Speed(compile=True)`` the compilation). ``speed`` means what it means in ``fit``, but
    defaults to ``devices.PLAIN`` (fp32, NCHW) so that a bare call measures the plain model. The
    model is trained for ``warmup + steps`` steps on the batch, so pass a throw-away model
    (this measures speed, not learning).
    """
    device = torch.device(device) if device is not None else model_device(model)
    step = _prepare_step(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), None, device,
                         speed, sync_batchnorm=False)
    step.model.train()
    images, labels = step.to_device(images, labels)

    def one_step() -> None:
        step.update(step.forward(images, labels)[1])

    for _ in range(warmup):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps * len(images) / (time.perf_counter() - start)


def check_folder_writable(folder: Path, what: str) -> None:
    """Raise before any work if ``what`` (e.g. "the checkpoint x.pt") could not be written into
    ``folder``. Missing folders are created when writing, so the first existing one is checked."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        raise ValueError(f"cannot write {what}: {existing} is not writable; choose another folder")


# What must agree between a History and the run that continues it: one record, one run.
CONTINUATION_KEYS = ("model", "batch_size", "train_images", "experiment", "run")


def _check_continuation(history: History, run_config: dict) -> None:
    """Refuse to continue a History that this run cannot continue as whole epochs of the same run."""
    if history.meta.get("stop_reason") in ("time_limit", "image_limit"):
        raise ValueError(f"this History was stopped by its budget in the middle of epoch {history.epochs_done} "
                         f"({history.meta.get('stopped', '')}): fit continues whole epochs only. Start a new run, "
                         f"or give the first run a larger budget.")
    # Compared as stored: a record read back from a file has lists where the model's arch has tuples.
    differ = [key for key in CONTINUATION_KEYS if key in history.config and key in run_config
              and plain_data(history.config[key]) != plain_data(run_config[key])]
    if differ and history.epochs_done:
        details = "; ".join(f"{key}: {history.config[key]!r} in the History, {run_config[key]!r} now" for key in differ)
        raise ValueError(f"this History is the record of another run ({details}). Continue it with the model, "
                         f"loader and settings it was trained with, or start a new History.")


def _check_fit_inputs(model: nn.Module, train_loader: Loader, optimizer: torch.optim.Optimizer, scheduler,
                      scheduler_interval: str, epochs: int, history: History | None, checkpoint_path) -> None:
    """Fail before any training on what would otherwise fail later (or silently)."""
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
    steps_per_epoch = _len_or_none(train_loader)
    if steps_per_epoch == 0:
        raise ValueError("the training loader yields no batches (no images, or fewer than one batch with "
                         "drop_last=True): check the data set and the batch size")
    own = {id(parameter) for parameter in model.parameters()}
    if not any(id(parameter) in own for group in optimizer.param_groups for parameter in group["params"]):
        raise ValueError("the optimizer holds none of this model's parameters, so training would change nothing: "
                         "make it for this model, e.g. torch.optim.SGD(model.parameters(), lr=0.1)")
    if scheduler is not None:
        epochs_left = epochs - (history.epochs_done if history is not None else 0)
        _check_scheduler(scheduler, scheduler_interval, epochs_left, steps_per_epoch)
    if checkpoint_path is not None:
        path = checkpoint_target(checkpoint_path)  # a folder, or a file that is not a checkpoint: refused now
        check_folder_writable(path.parent, f"the checkpoint {path}")


def _check_scheduler(scheduler, interval: str, epochs_left: int, steps_per_epoch: int | None) -> None:
    """A schedule stepped at the wrong interval gives wrong learning rates without an error: refuse the
    clear cases, warn about the likely ones."""
    name = type(scheduler).__name__
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if plateau and interval != "epoch":
        raise ValueError("ReduceLROnPlateau watches a loss once per epoch: pass scheduler_interval='epoch' "
                         "(fit steps it with the test loss, or the training loss without a val_loader)")
    if isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
        capacity = scheduler.total_steps - scheduler.last_epoch  # OneCycleLR raises past its total_steps
        needed = epochs_left * steps_per_epoch if interval == "step" and steps_per_epoch else epochs_left
        if interval == "epoch" and scheduler.total_steps > epochs_left:
            raise ValueError(f"OneCycleLR has total_steps={scheduler.total_steps}, but fit steps it once per epoch "
                             f"({epochs_left} times), so it would end far from its cycle's end: pass "
                             f"scheduler_interval='step' (or make it with total_steps={epochs_left})")
        if needed > capacity:
            raise ValueError(f"OneCycleLR has {capacity} steps left (total_steps={scheduler.total_steps}), but this "
                             f"fit steps it {needed} times: make it with total_steps={needed} "
                             f"(epochs x len(train_loader) for scheduler_interval='step')")
    boundaries = (getattr(scheduler, "step_size", None),) if hasattr(scheduler, "step_size") else \
        tuple(getattr(scheduler, "milestones", ()))
    if (interval == "step" and steps_per_epoch and boundaries and all(boundaries)
            and max(boundaries) < steps_per_epoch and epochs_left > 1):
        warnings.warn(f"{name} is stepped after every optimiser step here (scheduler_interval='step'), and its "
                      f"steps ({', '.join(map(str, boundaries))}) all fall within the first epoch of "
                      f"{steps_per_epoch} steps: if they are counted in epochs, pass scheduler_interval='epoch'",
                      stacklevel=3)


def _warn_non_finite_test_loss(history: History, epoch: int, bar: ProgressBar) -> None:
    """A NaN test loss with a finite training loss: the network in eval mode is broken (BatchNorm's running
    averages, or an fp16 overflow), and its test accuracy means nothing. Said in the log and the record."""
    message = (f"the test loss after epoch {epoch + 1} is {history.val_loss[-1]}: in eval mode the network's "
               f"outputs are not finite (BatchNorm's running averages far from the batches' statistics, or an "
               f"overflow in 16-bit precision), so its test accuracy ({history.val_acc[-1]:.1%}) means nothing")
    history.meta.setdefault("warnings", []).append(message)
    if is_main_process():
        bar.write(f"Warning: {message}.")


def _attach_history(error: BaseException, history: History) -> None:
    """Keep the History of the complete epochs on an error that stopped ``fit``: ``error.history``."""
    try:
        error.history = history
    except AttributeError:  # an exception type that takes no attributes: nothing to keep it on
        return
    if hasattr(error, "add_note"):  # Python 3.11+
        error.add_note(f"fit: the History of the {history.epochs_done} complete epoch(s) is in this "
                       f"exception's .history")


def check_images(images: torch.Tensor, loader: str) -> None:
    """Refuse a first batch a model cannot train on, saying what to do (not a dtype error from a layer)."""
    if not images.dtype.is_floating_point:
        raise ValueError(f"the {loader} loader gives {images.dtype} images: a network takes floating-point images, "
                         f"e.g. images.float() / 255 then normalised (TensorLoader does it; with torchvision, "
                         f"transforms.ToTensor() and Normalize)")
    if not torch.isfinite(images).all():
        raise ValueError(f"the first {loader} batch holds NaN or infinite pixel values: the data set is damaged "
                         f"or was normalised by a zero standard deviation; check it before training")


def check_labels(labels: torch.Tensor, num_classes: int, loader: str = "training", class_indices: bool = True) -> None:
    """Refuse labels the cross-entropy loss cannot use, or class indices the model has no output for.
    ``class_indices=False``: a loss of the caller's own, which takes whatever targets it takes."""
    if labels.dtype.is_floating_point and labels.dim() == 2:
        return  # soft targets (a distribution per image) are the loss function's business
    if class_indices and (labels.dtype.is_floating_point or labels.dtype not in (torch.int64, torch.uint8)):
        raise ValueError(f"the {loader} loader gives {labels.dtype} labels of shape {tuple(labels.shape)}: the "
                         f"cross-entropy loss takes class indices as int64 (labels.long()), or soft targets of "
                         f"shape (batch, {num_classes})")
    if labels.dtype.is_floating_point or labels.dim() != 1 or len(labels) == 0:
        return
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"the labels must be class indices 0-{num_classes - 1} for this model's {num_classes} "
                         f"outputs; the first {loader} batch has {labels.dtype} labels from {labels.min().item()} to "
                         f"{labels.max().item()}. Check the data set's labels (or the model's num_classes).")


def _len_or_none(loader: Loader) -> int | None:
    try:
        return len(loader)
    except TypeError:  # an iterable without len(): training works, the progress bar has no total
        return None


def _progress_bar(loader: Loader, epochs_left: int, enabled: bool):
    from tqdm.auto import tqdm  # tqdm.auto picks the notebook widget or the terminal bar when called

    steps_per_epoch = _len_or_none(loader)
    total = epochs_left * steps_per_epoch if steps_per_epoch is not None else None
    return tqdm(total=total, disable=not enabled, unit="step", dynamic_ncols=True)


def _close_at_steps_done(bar: ProgressBar) -> None:
    """Close the bar as a finished bar of the steps actually taken: a run stopped early (time limit,
    Ctrl-C) would otherwise leave a bar frozen at "3%" in the saved notebook, with no reason beside
    it. The line that says why is written by whoever stopped the run."""
    if bar.total is not None and bar.n < bar.total:
        bar.total = bar.n
        container = getattr(bar, "container", None)  # the notebook widget keeps its own maximum
        if container is not None:
            container.children[1].max = bar.n
        bar.refresh()
    bar.close()
    if getattr(bar, "container", None) is not None:
        # A notebook bar is a widget, and a saved notebook reopened (or exported, or on the course
        # site) cannot draw it: leave its final state as a line of text too.
        print(bar.format_meter(**bar.format_dict))


def _epoch_line(history: History, epochs: int) -> str:
    epoch = history.epochs_done
    line = (f"epoch {epoch}/{epochs}: train loss {history.train_loss[-1]:.4f}, "
            f"train acc {history.train_acc[-1]:.2%}")
    if not math.isnan(history.val_acc[-1]):
        line += f", test loss {history.val_loss[-1]:.4f}, test acc {history.val_acc[-1]:.2%}"
    return line + f", {history.epoch_seconds[-1]:.1f} s, {history.images_per_s[-1]:.0f} images/s"


def _loader_facts(loader: Loader) -> dict:
    """What a loader can say about the data it serves (batch size, images, augmentation)."""
    if isinstance(loader, TensorLoader):
        return {"batch_size": loader.batch_size, "train_images": len(loader.images), "cutout": loader.cutout}
    if isinstance(loader, torch.utils.data.DataLoader):
        return {"batch_size": loader.batch_size, "train_images": len(loader.dataset)}
    return {}


def _run_config(model, loader, optimizer, scheduler, epochs, step: TrainingStep, speed: Speed, flip_tta,
                extra) -> dict:
    group = optimizer.param_groups[0]
    return {
        "model": getattr(model, "arch", {"name": type(model).__name__}),
        "model_name": getattr(model, "model_name", None),  # set by models.build: "resnet-20", "resnet18", ...
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "epochs": epochs,
        **_loader_facts(loader),
        "optimizer": type(optimizer).__name__,
        "lr": group.get("initial_lr", group["lr"]),
        "momentum": group.get("momentum"),
        "nesterov": group.get("nesterov"),
        "weight_decay": group.get("weight_decay"),
        "scheduler": type(scheduler).__name__ if scheduler is not None else None,
        "precision": step.precision,  # what the step uses, as chosen once by _prepare_step
        "channels_last": step.memory_format == torch.channels_last,
        "compile": speed.compile,
        "step_path": speed.step_path(step.device),  # eager, compiled, or compiled with CUDA graphs
        "flip_tta": flip_tta,
        **(extra or {}),
    }


def _run_meta(device: torch.device) -> dict:
    return {
        "device": describe_device(device),
        # Which vector units torch's CPU kernels use: CPUs of one kind of VM can differ (AVX2, AVX512),
        # and the same networks then train at other speeds relative to each other.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
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
