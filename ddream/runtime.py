"""What every command that runs a model needs: the device, bf16 autocast on CUDA, seeded generators.
Inference (sample, reconstruct, eval, encode, serve) imports this, never the training loop."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import torch

from ddream.errors import BadInput


def seeded(seed: int, *parts: Any) -> torch.Generator:
    """A CPU generator whose seed is derived from (seed, parts): same parts, same draws."""
    text = ":".join(str(p) for p in (seed, *parts))
    g = torch.Generator()
    g.manual_seed(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))
    return g


def pick_device(name: str) -> torch.device:
    """'auto' (cuda > mps > cpu), 'cpu', 'cuda', 'cuda:N' or 'mps'; anything else is bad input."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise BadInput(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"device {name!r} asked for, but CUDA is not available here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise BadInput("device 'mps' asked for, but MPS is not available here")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise BadInput(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return dev


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a null context elsewhere (CPU bf16 is slower than fp32 on most CPUs)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
