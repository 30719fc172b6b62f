"""Training with several processes (``torchrun``): joining and leaving the process group, and who
prints and writes. The callers (the command line, a launcher script) start the group; ``fit`` only
asks whether one exists.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    """True inside a process group (e.g. started by ``torchrun``)."""
    return dist.is_available() and dist.is_initialized()


def launched_by_torchrun() -> bool:
    """True in a process started by ``torchrun`` (it sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def start_process_group() -> None:
    """Join the process group ``torchrun`` set up: NCCL between GPUs, gloo between CPU processes."""
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
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


def world_size() -> int:
    """How many processes train together: 1 outside a process group."""
    return dist.get_world_size() if is_distributed() else 1


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel, which averages gradients across processes in backward()."""
    if device.type != "cuda":
        return nn.parallel.DistributedDataParallel(model)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return nn.parallel.DistributedDataParallel(model, device_ids=[index])


def global_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum of ``value`` over all processes (a copy; ``value`` itself is unchanged)."""
    value = value.clone()
    dist.all_reduce(value)
    return value


def global_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over all processes."""
    return global_sum(value) / dist.get_world_size()
