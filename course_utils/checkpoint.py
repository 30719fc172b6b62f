"""Saving and loading training state, safely.

A checkpoint holds the model's weights and what is needed to go on training exactly where it
stopped: optimiser and scheduler state, the History, the random number generators, and the
model's architecture record. Files are read with ``torch.load(weights_only=True)``: tensors and
plain data only, so a file carrying pickled code is refused instead of executed.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from course_utils.history import History, plain_data

CHECKPOINT_FORMAT = "course_utils.checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, damaged, unsafe, or does not fit the model."""


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` found besides the weights it loaded."""

    path: Path
    epoch: int | None
    arch: dict | None
    history: History | None
    meta: dict = field(default_factory=dict)
    model_name: str | None = None  # the name ``models.build`` gave the model ("resnet-20"); None for older files


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    history: History | None = None,
    **meta,
) -> Path:
    """Write a checkpoint atomically: to a temporary file first, then renamed over ``path``.

    An interrupted save (Ctrl-C, full disk, power cut) therefore never damages the previous
    file. ``meta`` keywords (e.g. ``epoch=3``) are stored as plain data (``history.plain_data``:
    a NumPy number becomes a number, a ``Path`` a string), so the file always loads again safely.
    """
    path = checkpoint_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        if _abandoned(leftover, path.name):  # from a save that was killed mid-way, not one under way
            leftover.unlink(missing_ok=True)
    weights = _unwrap(model).state_dict()
    state = {
        "format": CHECKPOINT_FORMAT,
        "model_state": weights,
        "weights_sha256": weights_checksum(weights),
        "arch": plain_data(getattr(_unwrap(model), "arch", None)),
        "model_name": getattr(_unwrap(model), "model_name", None),
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
        "history": history.to_dict() if history is not None else None,
        "rng": _rng_states(),
        "meta": plain_data(meta),
    }
    # The temporary file is named after this process, so that a save elsewhere can tell it is alive.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def checkpoint_target(path: str | os.PathLike) -> Path:
    """The file a checkpoint saved to ``path`` goes to, or an error before anything is trained or written.

    ``~`` is expanded, and a symbolic link is followed (its target gets the checkpoint; the link stays a
    link). An existing file that is not a PyTorch checkpoint (a run record, notes) is never overwritten.
    """
    path = Path(path).expanduser()
    if path.is_symlink():
        path = path.resolve()
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name for the checkpoint, e.g. {path / 'model.pt'}")
    if path.exists() and not _is_torch_file(path):
        raise FileExistsError(f"{path} exists and is not a checkpoint: refusing to overwrite it. Choose another "
                              f"file name for the checkpoint, or move that file away first.")
    return path


def _is_torch_file(path: Path) -> bool:
    """True for a file ``torch.save`` wrote (a zip archive holding a data.pkl), or an empty file."""
    if path.stat().st_size == 0:
        return True
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("data.pkl") for name in archive.namelist())


def _abandoned(temporary: Path, name: str, old_seconds: float = 600) -> bool:
    """Whether a leftover temporary file of a save can go: its process is gone (or, for a name
    without a process id, it is older than ``old_seconds``)."""
    owner = temporary.name[len(f".{name}."):].split(".")[0]
    if owner.isdigit():
        try:
            os.kill(int(owner), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, another user's
        return False  # alive: its save is under way
    try:
        return time.time() - temporary.stat().st_mtime > old_seconds
    except FileNotFoundError:
        return False


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    restore_rng: bool = True,
    map_location: str | torch.device = "cpu",
) -> Checkpoint:
    """Load a checkpoint (or a bare ``state_dict`` file) into ``model``, strictly.

    Every key must match in name and shape, otherwise ``CheckpointError`` lists the missing,
    unexpected and wrong-shape keys and nothing is loaded. A ``module.`` prefix left by
    DataParallel / DistributedDataParallel (or ``_orig_mod.`` by torch.compile) is matched to the
    model's own names, which may have one too (``torch.optim.swa_utils.AveragedModel``). Optimiser,
    scheduler and random number generator states are restored when given / available, so training
    can resume exactly.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; check the path or train and save first")
    _check_file_kind(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"refusing to load {path}: it contains Python objects other than tensors and plain data, "
            f"which could run code when unpickled. Only if you trust its author, load it yourself with "
            f"torch.load(..., weights_only=False) and pass its state_dict to model.load_state_dict.\n"
            f"Details: {_unpickler_reason(error)}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or damaged?): {error}") from None

    is_ours = isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT
    weights = state["model_state"] if is_ours else state
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"{path} holds neither a course checkpoint nor a state_dict of tensors")
    if is_ours and state.get("weights_sha256") not in (None, weights_checksum(weights)):
        raise CheckpointError(f"{path} is damaged: its weights do not match the checksum stored when it was "
                              f"saved (a corrupted copy or disk?). Nothing was loaded; copy the file again.")
    history = None
    if is_ours and state.get("history") is not None:  # read before any weight changes: refused whole, or loaded
        try:
            history = History.from_dict(state["history"])
        except ValueError as error:  # e.g. a History of a newer format
            raise CheckpointError(f"the History in {path} cannot be read: {error}. Nothing was loaded.") from None
    weights = _match_keys(weights, _unwrap(model).state_dict().keys())
    if is_ours and optimizer is not None and state["optimizer_state"] is not None:
        _check_optimizer_fits(optimizer, state["optimizer_state"], path)  # before any weight changes
    if is_ours and scheduler is not None and state["scheduler_state"] is not None:
        _check_scheduler_fits(scheduler, state["scheduler_state"], path)
    load_state_dict_strict(_unwrap(model), weights, source=str(path))

    if not is_ours:
        return Checkpoint(path=path, epoch=None, arch=None, history=None)
    if optimizer is not None and state["optimizer_state"] is not None:
        optimizer.load_state_dict(state["optimizer_state"])
    if scheduler is not None and state["scheduler_state"] is not None:
        scheduler.load_state_dict(state["scheduler_state"])
    if restore_rng:
        _set_rng_states(state["rng"])
    meta = dict(state["meta"])
    return Checkpoint(path=path, epoch=meta.get("epoch"), arch=state["arch"], history=history, meta=meta,
                      model_name=state.get("model_name"))


def load_state_dict_strict(model: nn.Module, weights: dict[str, torch.Tensor], source: str = "state_dict") -> None:
    """``model.load_state_dict(weights)`` that first checks every key and shape, and says what differs."""
    expected = model.state_dict()
    # BatchNorm's step counter is absent from older PyTorch's and some exporters' files; torch's own strict
    # load fills it in, and it changes nothing the network computes (it counts steps for momentum=None).
    missing = [key for key in expected if key not in weights and not key.endswith("num_batches_tracked")]
    unexpected = [key for key in weights if key not in expected]
    wrong_shape = [f"{key}: file {tuple(weights[key].shape)} vs model {tuple(expected[key].shape)}"
                   for key in expected if key in weights and weights[key].shape != expected[key].shape]
    if missing or unexpected or wrong_shape:
        raise CheckpointError(
            f"{source} does not fit this model (was it saved from a different architecture or width?)\n"
            + _key_list(missing, "missing (in the model, not in the file)")
            + _key_list(unexpected, "unexpected (in the file, not in the model)")
            + _key_list(wrong_shape, "with another shape")
        )
    model.load_state_dict(weights, strict=True)


def _unpickler_reason(error: Exception) -> str:
    # torch's message is long; the line naming the refused object is the useful one.
    lines = str(error).splitlines()
    return next((line.strip() for line in lines if "WeightsUnpickler error" in line), lines[0] if lines else "")


def _key_list(keys: list[str], what: str, shown: int = 8) -> str:
    if not keys:
        return ""
    more = f" ... and {len(keys) - shown} more" if len(keys) > shown else ""
    return f"  {len(keys)} {'key' if len(keys) == 1 else 'keys'} {what}: {', '.join(keys[:shown])}{more}\n"


def weights_checksum(weights: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the names, shapes, types and bytes of ``weights``: detects a single flipped bit
    (torch.load itself does not: a damaged weight loads silently with a changed value)."""
    digest = hashlib.sha256()
    for key in sorted(weights):
        tensor = weights[key].detach().cpu().contiguous()
        digest.update(f"{key}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        if tensor.numel():  # the raw bytes, whatever the type (reshape: a 0-d tensor cannot be viewed as bytes)
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _check_optimizer_fits(optimizer: torch.optim.Optimizer, saved: dict, path: Path) -> None:
    """The saved optimiser state must have the same parameter groups, of the same sizes."""
    groups = [len(group["params"]) for group in saved.get("param_groups", [])]
    ours = [len(group["params"]) for group in optimizer.param_groups]
    if groups != ours:
        raise CheckpointError(
            f"the optimiser state in {path} does not fit this optimiser: it has parameter groups of "
            f"{groups} parameters, this optimiser {ours}. Was it saved with another model or optimiser? "
            f"Nothing was loaded; load without the optimiser (optimizer=None) to take only the weights.")


def _check_scheduler_fits(scheduler, saved: dict, path: Path) -> None:
    """A scheduler's state is its attributes: another kind of scheduler has other ones (and
    load_state_dict would quietly mix them)."""
    missing = sorted(set(scheduler.state_dict()) - set(saved))
    extra = sorted(set(saved) - set(scheduler.state_dict()))
    if missing or extra:
        raise CheckpointError(
            f"the scheduler state in {path} does not fit this {type(scheduler).__name__}: "
            + (f"it lacks {', '.join(missing)}" if missing else "")
            + ("; " if missing and extra else "") + (f"it has {', '.join(extra)} besides" if extra else "")
            + ". Was it saved with another scheduler? Nothing was loaded; pass scheduler=None to skip it.")


def _match_keys(weights: dict, model_keys) -> dict:
    """The file's keys named as the model names them where they differ only by a wrapper's prefix:
    a DistributedDataParallel file into a plain model, a plain file into an ``AveragedModel`` (whose
    own keys start with ``module.``). A key the model has as it is stays as it is."""
    model_keys = set(model_keys)
    by_plain_name = {_strip_module_prefix(key): key for key in model_keys}
    return {key if key in model_keys else by_plain_name.get(_strip_module_prefix(key), key): value
            for key, value in weights.items()}


def _strip_module_prefix(key: str) -> str:
    # DataParallel / DistributedDataParallel save "module.", torch.compile "_orig_mod.", in any nesting.
    while key.startswith(("module.", "_orig_mod.")):
        key = key.split(".", 1)[1]
    return key


# What a PyTorch file starts with: a zip archive (torch.save since 1.6) or a pickle (older files).
TORCH_FILE_STARTS = (b"PK\x03\x04", b"\x80")


def _check_file_kind(path: Path) -> None:
    """Refuse, with the likely reason, files that are not PyTorch files at all."""
    with open(path, "rb") as file:
        start = file.read(512)
    if start.startswith(TORCH_FILE_STARTS):
        return
    if start.startswith(b"version https://git-lfs"):
        raise CheckpointError(f"{path} is a git-LFS pointer, not the checkpoint itself: run `git lfs pull` "
                              f"in the repository (or download the real file) and load it again")
    if start.lstrip().lower().startswith((b"<!doctype html", b"<html", b"<?xml", b"<")):
        raise CheckpointError(f"{path} is a web page (HTML), not a checkpoint: the download saved the page "
                              f"around the file; download the file itself (on GitHub: the 'raw' link)")
    shown = start[:16]
    raise CheckpointError(f"{path} is not a PyTorch file (it starts with {shown!r}; a checkpoint starts with "
                          f"PK, a zip archive); was it saved with torch.save?")


def _unwrap(model: nn.Module) -> nn.Module:
    # DataParallel and DistributedDataParallel keep the real model in .module.
    return model.module if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else model


def _rng_states() -> dict:
    # NumPy's state is converted to plain lists so that weights_only loading accepts it.
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [name, keys.tolist(), position, has_gauss, cached_gaussian],
        "python": random.getstate(),
    }


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
