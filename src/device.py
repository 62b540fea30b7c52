"""Which device and precision the generator runs in, and which GPU a process gets: one meaning everywhere.

Inference (tiling, batch, the ChimeraX command) and training all decide here (the names themselves,
checked without torch, are options.py's):

- Device "auto": CUDA when PyTorch sees a GPU, else Apple MPS, else the CPU.
  Under torchrun (``LOCAL_RANK`` set) a process asking for "auto" or "cuda"
  gets GPU ``cuda:LOCAL_RANK``.
- Precision "auto": bf16 autocast where the device computes bf16 natively
  (CUDA GPUs that support it, CPUs with AVX512-BF16 or AMX), fp32 elsewhere
  (MPS, older GPUs and CPUs, where bf16 would be emulated). "fp32", "bf16" and
  "fp16" are taken as asked.
- Ranks: ``RANK`` and ``WORLD_SIZE`` (torchrun's, or set by hand for a job array); processes meet
  (a process group) only when torchrun started them.
"""
from __future__ import annotations

import contextlib
import os
import warnings

import torch

from .errors import InputError
from .options import DEVICE_FORMS, check_device_name, check_precision_name

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for ``name`` (options.check_device_name's forms; InputError if unusable here)."""
    name = check_device_name(name)
    mps_available = torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"Unknown compute device '{name}': use {DEVICE_FORMS}.")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                "A CUDA GPU was requested but PyTorch finds none on this computer; use device auto or cpu."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(
                f"CUDA GPU {device.index} was requested but this computer has {torch.cuda.device_count()}."
            )
    if device.type == "mps" and not mps_available:
        raise InputError("Apple's MPS GPU was requested but PyTorch cannot use it here; use device auto or cpu.")
    return device


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 autocast is faster than fp32."""
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    try:
        return bool(probe and probe())
    except Exception:  # a private probe: any failure means "do not rely on it"
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision "fp32", "bf16" or "fp16" that ``precision`` means on ``device`` (see the module's rules)."""
    if check_precision_name(precision) != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"


def checked_precision(precision: str, device: torch.device) -> str:
    """:func:`resolve_precision`, with a warning when the choice is emulated and very slow on ``device``."""
    resolved = resolve_precision(precision, device)
    if resolved == "fp16" and device.type == "cpu":
        warnings.warn("fp16 on a CPU has no fast kernels: it runs tens to hundreds of times slower than fp32 or "
                      "bf16. Use precision auto (bf16 where the CPU has it) or fp32.", stacklevel=2)
    return resolved


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for ``precision`` (as :func:`resolve_precision` resolves it) on ``device``; none for fp32."""
    precision = resolve_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[precision])


def rank_from_env() -> tuple[int, int]:
    """(rank, world size) from ``RANK`` and ``WORLD_SIZE`` (torchrun's), (0, 1) when unset."""
    try:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    except ValueError:
        raise InputError("RANK and WORLD_SIZE must be whole numbers.") from None
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"RANK {rank} must lie in 0..WORLD_SIZE-1 (WORLD_SIZE is {world}).")
    return rank, world


def started_by_torchrun() -> bool:
    """Whether torchrun started this process (it sets ``TORCHELASTIC_RUN_ID``): only then are there other
    processes to meet; ``MASTER_ADDR`` alone may be left over in a shell or a job's environment."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def process_device(name: str = "auto") -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` under torchrun when CUDA is asked for (or auto) and there.

    A CUDA device with an index becomes the current one, which keeps library
    workspaces off GPU 0.
    """
    local = os.environ.get("LOCAL_RANK")
    if local is not None and check_device_name(name) in ("auto", "cuda") and torch.cuda.is_available():
        if not local.isdigit():
            raise InputError(f"LOCAL_RANK must be a whole number, got '{local}'.")
        name = f"cuda:{local}"
    device = resolve_device(name)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return device
