"""The run record: ``History``, what one training run recorded, saved and loaded as strict JSON.

A file format, shared by training (which fills it), checkpoints (which store it) and the plots and
verdicts (which read it); so it depends on nothing else in the package.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

HISTORY_FORMAT = "course_utils.History/1"
FINAL_LOSS_STEPS = 10  # History.final_loss averages this many last steps: one step's loss depends on its batch


def check_format(format_name) -> None:
    """Refuse a record that is not a History, or one of a newer format than this code reads."""
    if format_name == HISTORY_FORMAT:
        return
    family, _, version = str(format_name).partition("/")
    if family == HISTORY_FORMAT.split("/")[0] and version.isdigit() and int(version) > int(HISTORY_FORMAT.split("/")[1]):
        raise ValueError(f"it is a run record of a newer format ({format_name!r}; this course_utils reads "
                         f"{HISTORY_FORMAT!r}): update the course's code (git pull, or pip install -U) to read it")
    raise ValueError(f"not a run record of format {HISTORY_FORMAT!r} (format={format_name!r})")
EPOCH_COLUMNS = ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds", "images_per_s")
STOP_REASONS = ("time_limit", "image_limit", "interrupted")


@dataclass
class History:
    """What a training run recorded; saved as a JSON run record.

    Per step (one optimiser update): ``step_loss`` and ``step_lr``.
    Per epoch: ``train_loss``, ``train_acc`` (0-1, on the augmented batches), ``val_loss``,
    ``val_acc`` (``nan`` without a validation loader), ``epoch_seconds``, ``images_per_s``.
    ``config`` says what was trained and how; ``meta`` where and when (filled in by ``fit``).
    A run that ended early says so in ``meta["stopped"]`` (a sentence) and ``meta["stop_reason"]``
    (one of ``STOP_REASONS``); see ``stop`` and ``interrupted``.
    """

    step_loss: list[float] = field(default_factory=list)
    step_lr: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    images_per_s: list[float] = field(default_factory=list)
    epoch_end_steps: list[int] = field(default_factory=list)  # steps done when each epoch ended
    config: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    # Fields a newer course_utils wrote that this one does not know: kept, and written back on save.
    unknown_fields: dict = field(default_factory=dict, repr=False)

    def stop(self, reason: str, message: str) -> None:
        """Record that training ended early: ``reason`` is one of ``STOP_REASONS``."""
        if reason not in STOP_REASONS:
            raise ValueError(f"unknown stop reason {reason!r}; use one of {', '.join(STOP_REASONS)}")
        self.meta.update(stop_reason=reason, stopped=message)

    @property
    def interrupted(self) -> bool:
        """True when the run was stopped by Ctrl-C (its last epoch may be missing)."""
        return self.meta.get("stop_reason") == "interrupted"

    @property
    def model_name(self) -> str | None:
        """The course's name of the trained model (``models.build``: "resnet-20", "resnet18"), or None
        for a model not built by name; ``models.family_and_depth`` reads family and depth from it."""
        return self.config.get("model_name")

    @property
    def test_acc(self) -> float:
        """Accuracy on the whole test split at the end of the run: ``meta["final_test"]`` where the
        per-epoch evaluations used a sample of it (``Settings.val_size``) or the final test used more views
        (``Settings.translate_tta``), else the last ``val_acc``."""
        final = self.meta.get("final_test")
        return final["accuracy"] if final else self.val_acc[-1]

    @property
    def epochs_done(self) -> int:
        return len(self.train_loss)

    @property
    def images_trained(self) -> float:
        """Training images seen over the run (each epoch's images/s times its seconds): a budget-stopped
        run's last epoch counts only the part it trained."""
        return sum(rate * seconds for rate, seconds in zip(self.images_per_s, self.epoch_seconds))

    def epoch_ends(self) -> np.ndarray:
        """The step at which each recorded epoch ended (for drawing epochs on a step axis).

        ``fit`` records them (``epoch_end_steps``). A record written before it did is read from
        what each epoch trained (images/s x seconds, in batches): a run stopped by a time limit has a
        short last epoch, so dividing the steps evenly among the epochs would draw every epoch's
        point too far along.
        """
        if len(self.epoch_end_steps) == self.epochs_done:
            return np.asarray(self.epoch_end_steps, dtype=float)
        total = len(self.step_loss)
        batch = self.config.get("batch_size")
        if batch:
            batch *= self.config.get("world_size", 1)
            steps = [math.ceil(round(rate * seconds) / batch)  # the batches of the images each epoch trained
                     for rate, seconds in zip(self.images_per_s, self.epoch_seconds)]
            ends = np.cumsum(steps, dtype=float)
            if len(ends) and abs(ends[-1] - total) <= len(ends):  # agrees with the steps recorded (rounding aside)
                return np.minimum(ends, total)
        return np.arange(1, self.epochs_done + 1) * total / max(self.epochs_done, 1)

    def final_loss(self, last_steps: int = FINAL_LOSS_STEPS) -> float:
        """Training loss at the end of the run: the mean of the last ``last_steps`` step losses
        (one step's loss is noisy: it depends on the batch)."""
        if not self.step_loss:
            raise ValueError("this History has no steps yet")
        tail = self.step_loss[-last_steps:]
        return sum(tail) / len(tail)

    def startup_seconds(self) -> float:
        """How much longer the first epoch took than the median of the others: compiling
        (``torch.compile``), recording CUDA graphs, choosing kernels. 0 with fewer than 2 epochs or
        without a longer first epoch. Training time without start-up is ``wall_seconds`` minus this."""
        if len(self.epoch_seconds) < 2:
            return 0.0
        return max(self.epoch_seconds[0] - float(np.median(self.epoch_seconds[1:])), 0.0)

    def seconds_to_accuracy(self, accuracy: float, without_startup: bool = False) -> float | None:
        """Training seconds until the first epoch whose validation accuracy reached ``accuracy``
        (the sum of the epochs' training times up to it), or None if no epoch did.
        ``without_startup``: less ``startup_seconds()`` (the time a compiled run spent compiling)."""
        elapsed = -self.startup_seconds() if without_startup else 0.0
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
        known = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "unknown_fields"}
        return plain_data({"format": HISTORY_FORMAT, **self.unknown_fields, **known})

    @classmethod
    def from_dict(cls, record: dict) -> "History":
        if not isinstance(record, dict):
            raise ValueError(f"a run record is a JSON object, this one is a {type(record).__name__}")
        check_format(record.get("format"))
        fields = {name: record[name] for name in cls.__dataclass_fields__ if name in record and name != "unknown_fields"}
        unknown = {name: value for name, value in record.items()
                   if name not in cls.__dataclass_fields__ and name != "format"}
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
        lengths = {name: len(fields[name]) for name in (*EPOCH_COLUMNS, "epoch_end_steps") if fields.get(name)}
        if len(set(lengths.values())) > 1:  # one row per epoch: columns of other lengths would fail in a plot
            raise ValueError("its per-epoch columns have different lengths ("
                             + ", ".join(f"{name} {length}" for name, length in lengths.items()) + ")")
        if fields.get("step_loss") and fields.get("step_lr") and len(fields["step_loss"]) != len(fields["step_lr"]):
            raise ValueError(f"it has {len(fields['step_loss'])} step losses but {len(fields['step_lr'])} step "
                             f"learning rates")
        return cls(**fields, unknown_fields=unknown)

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write the run record atomically (a temporary file renamed into place), as strict JSON:
        NaN and infinities (a run without validation has NaN accuracies) are written as the
        strings "NaN", "Infinity" and "-Infinity", which every JSON reader accepts and
        ``load_json`` reads back as numbers. ``~`` is the home folder, as in a shell."""
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(_name_non_finite(self.to_dict()), indent=1, allow_nan=False)
        # A temporary file of this save's own (two saves at once must not write into one file).
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as file:
                file.write(text)
            os.chmod(temporary, 0o644)  # mkstemp makes it private; a record is for everyone to read
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> "History":
        path = Path(path).expanduser()
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
