"""Where and how fast the arithmetic runs: the device, the precision and the memory layout.

``pick_device`` finds the fastest device; ``Speed`` groups the three switches that change how fast a
model trains without changing what it computes (up to rounding): mixed precision, the channels-last
layout and ``torch.compile``. ``fit``, ``evaluate`` and ``measure_training_speed`` take one ``Speed``.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

import torch
from torch import nn

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
NATIVE = "native"  # amp="native": what the hardware computes natively, CPUs included (choose_precision)


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
    """A human name for a device, e.g. 'cuda (NVIDIA H100 80GB HBM3)' or 'cpu (2 threads, x86_64)'."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without parameters)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def cpu_has_bf16_matrix_units() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX, from Xeon Sapphire Rapids on).
    There bf16 autocast trained ResNet-9 width 16 at 2,200-2,370 images/s against fp32's 1,195-1,276
    (2 cores, 2026-12-02), where a CPU without bf16 arithmetic ran bf16 at half fp32's speed."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, but torch's own test; absent: no
    return bool(check is not None and check())


def choose_precision(device: torch.device | str, amp: bool | str | None = None) -> str:
    """The arithmetic of training and evaluation on ``device``: "bf16", "fp16" or "fp32".

    ``amp=None`` (the default) chooses by what a GPU does natively. On a CUDA GPU: bf16
    autocast where the GPU computes in bf16 natively (compute capability 8.0 and later: A100,
    RTX 30xx/40xx, L4, H100), else fp16 autocast with a gradient scaler (T4 7.5, V100 7.0: bf16
    there is emulated and slow, and fp16's small range needs the scaler to keep small gradients
    from rounding to zero). Elsewhere (CPU, Apple MPS) fp32: a CPU without bf16 arithmetic ran
    bf16 at half the speed of fp32. ``amp=True`` asks for 16 bits anyway (bf16 on a CPU, the
    GPU's choice above on CUDA), ``amp=False`` for fp32, and "bf16" / "fp16" / "fp32" for that one.
    ``amp="native"`` (``NATIVE``) is the automatic choice on a GPU and, on a CPU, bf16 where it has
    bf16 matrix units (``cpu_has_bf16_matrix_units``), fp32 where not: the laptop recipe's choice.
    The automatic one keeps fp32 on every CPU, so that the notebooks' CPU lessons train alike on all.
    """
    device = torch.device(device)
    if amp == NATIVE:
        if device.type == "cpu":
            return "bf16" if cpu_has_bf16_matrix_units() else "fp32"
        amp = None  # a GPU computes natively what the automatic choice picks
    if isinstance(amp, str):
        if amp not in AUTOCAST_DTYPES:
            raise ValueError(f"amp={amp!r} is not a precision; use one of {', '.join(AUTOCAST_DTYPES)}, "
                             f"{NATIVE}, True, False or None (automatic)")
        return amp
    if amp is False or (amp is None and device.type != "cuda"):
        return "fp32"
    if device.type != "cuda":
        return "bf16"
    major, _minor = torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16"


# torch.compile's modes. "reduce-overhead" (and "max-autotune") also replay each compiled step as a
# CUDA graph: one launch for the whole forward (or backward) pass instead of one per kernel, which is
# what small networks at batch 128 wait for on a fast GPU (benchmarks/README.md, "On a GPU").
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class Speed:
    """The speed switches of training and evaluation. The defaults choose by the device.

    ``amp``: the precision, see ``choose_precision`` (None: by the GPU's capability, fp32 on a CPU).
    ``channels_last``: store images and weights as (N, H, W, C), the layout fast convolution kernels
    want (None: on with CUDA, off elsewhere). ``compile``: train through ``torch.compile(model)``
    (True, or one of ``COMPILE_MODES``, e.g. ``"reduce-overhead"`` for CUDA graphs on a GPU); its
    first steps are slow (compiling takes seconds to minutes), so it pays off on long runs only.
    """

    amp: bool | str | None = None
    channels_last: bool | None = None
    compile: bool | str = False

    def __post_init__(self) -> None:
        if not isinstance(self.compile, bool) and self.compile not in COMPILE_MODES:
            raise ValueError(f"compile={self.compile!r}: use True, False or one of {', '.join(COMPILE_MODES)}")

    def precision(self, device: torch.device) -> str:
        return choose_precision(device, self.amp)

    def uses_channels_last(self, device: torch.device) -> bool:
        return device.type == "cuda" if self.channels_last is None else bool(self.channels_last)

    def memory_format(self, device: torch.device) -> torch.memory_format:
        return torch.channels_last if self.uses_channels_last(device) else torch.contiguous_format

    @property
    def compile_mode(self) -> str | None:
        """torch.compile's mode ("default" for ``compile=True``), or None when not compiling."""
        return None if self.compile is False else "default" if self.compile is True else self.compile

    def uses_cuda_graphs(self, device: torch.device) -> bool:
        """Whether the compiled step replays as CUDA graphs (CUDA only; elsewhere the mode just compiles)."""
        return device.type == "cuda" and self.compile_mode in CUDA_GRAPH_MODES

    def step_path(self, device: torch.device) -> str:
        """How a training step runs on ``device``, as the run records store it."""
        if self.compile_mode is None:
            return "eager"
        return "compiled, CUDA graphs" if self.uses_cuda_graphs(device) else "compiled"


# What a bare measurement or evaluation uses unless told otherwise: the plain model, fp32 and NCHW.
PLAIN = Speed(amp=False, channels_last=False)


def autocast(device: torch.device, precision: str):
    """The autocast context of ``precision`` ("fp32": autocast switched off)."""
    dtype = AUTOCAST_DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
