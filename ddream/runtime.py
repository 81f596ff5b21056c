"""What every command that runs a model needs: the device, bf16 where the hardware has it, seeded
generators.
Inference (sample, reconstruct, eval, encode, serve) imports this, never the training loop."""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import Any

import torch

from ddream.errors import BadInput


def seeded(seed: int, *parts: Any) -> torch.Generator:
    """A CPU generator whose seed is derived from (seed, parts): same parts, same draws."""
    text = ":".join(str(p) for p in (seed, *parts))
    g = torch.Generator()
    g.manual_seed(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))
    return g


# ---- rows per call: one rule for every loop that slices a batch --------------------------------------
# Loops that slice only to bound memory take ROWS[...]; the two that slice for speed ask rows_per_call:
# on a CPU the DiT runs ~1.5x faster on slices of 1,024 rows, whose activations stay in cache (2,048 in
# bf16, ~1.1x more), the decoder 2-3x faster on 256 and the encoder 1.6x; a GPU wants large batches
# (BENCHMARKS.md).
ROWS = {"draw": 2000, "features": 2000, "reconstruct": 1000, "distances": 2048}


def rows_per_call(work: str, device: torch.device, dtype: str = "fp32") -> int | None:
    """Rows per call of the DiT ("dit"), a decoder ("decoder") or the encoder ("encoder") on this
    device; None: all of them."""
    cpu = device.type == "cpu"
    if work == "dit":
        return (2048 if dtype == "bf16" else 1024) if cpu else None
    if work in ("decoder", "encoder"):
        return 256 if cpu else 16384
    raise ValueError(f"no rows-per-call rule for {work!r}")


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


DTYPES = ("auto", "fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` runs bf16 arithmetic in hardware: a CUDA GPU that supports it, or a CPU whose
    oneDNN kernels have bf16 dot products. Other CPUs emulate bf16, which is slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and not fp32_asked() and cpu_has_bf16()


def fp32_asked() -> bool:
    """DDREAM_FP32=1 in the environment: a CPU computes in fp32 wherever bf16 would be chosen
    for it (training and `--dtype auto`), so runs on CPUs with and without bf16 draw the same pixels
    (the test suite sets it for the processes it starts)."""
    return os.environ.get("DDREAM_FP32", "") not in ("", "0")


def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """AVX512-BF16 or AMX in the CPU's flags (Linux), and oneDNN allowed to use them."""
    try:  # oneDNN's own check first: it honours ONEDNN_MAX_CPU_ISA
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
        with open(cpuinfo) as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
    except (OSError, AttributeError, RuntimeError):  # no /proc (macOS, Windows), or an older torch
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def sampling_dtype(device: torch.device, dtype: str = "auto") -> str:
    """The arithmetic that drawing digits runs in: 'auto' is bf16 where the hardware has it (see
    `native_bf16`), fp32 elsewhere. bf16 moves a pixel by 0.2 grey levels on average; it drew the
    same FID, class accuracy and recall as fp32 (BENCHMARKS.md)."""
    if dtype not in DTYPES:
        raise BadInput(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    if dtype == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return dtype


# Which training work runs in bf16 on a CPU with native bf16 (a GPU runs all of it in bf16), each
# measured alone against fp32 (benchmarks/train_levers.py, BENCHMARKS.md): the autoencoder's
# convolutions 1.4-1.5x faster, the teacher's pairs (batches of 2,000 rows) 1.55x; the DiT's step
# (batches of 64 rows through 160-wide layers, where the casts cost more than the products save) 0.82x;
# in the distill stage, the small decoder's step (with its target, the autoencoder's decoding) 1.71x
# and the judge's 2.34x, each with channels-last memory beside it.
CPU_BF16_WORK = {
    "autoencoder": True,
    "teacher pairs": True,
    "dit step": False,
    "student step": False,
    "decoder step": True,
    "judge": True,
}


def training_dtype(device: torch.device, work: str) -> str:
    """What an optimisation step (or the teacher's pairs, which train the student) of `work` computes
    in: bf16 where the hardware has it (the rule sampling uses, `native_bf16`) and, on a CPU, where
    CPU_BF16_WORK found it faster; fp32 elsewhere. Weights, optimisers and losses stay fp32
    (autocast)."""
    if work not in CPU_BF16_WORK:
        raise ValueError(f"no training dtype rule for {work!r}")
    if not native_bf16(device):
        return "fp32"
    return "bf16" if device.type != "cpu" or CPU_BF16_WORK[work] else "fp32"


def exact_dtype(device: torch.device) -> str:
    """What encoding, reconstruction and held-out scores compute in: bf16 on CUDA, fp32 on a CPU
    (their figures are the ones a user compares across machines)."""
    return "bf16" if device.type == "cuda" else "fp32"


def autocast(device: torch.device, dtype: str | None = None) -> contextlib.AbstractContextManager:
    """bf16 autocast as `dtype` says ('bf16' or 'fp32', from `sampling_dtype` or
    `training_dtype`), by default as `exact_dtype` says; a null context for fp32."""
    if (dtype or exact_dtype(device)) == "bf16" and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
