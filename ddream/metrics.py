"""Image quality numbers: PSNR (at 28x28, on [0, 1] images)."""

from __future__ import annotations

import torch


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of two (N, H, W) batches in [0, 1]; capped at 100 dB for exact matches."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).clamp(max=100.0)
