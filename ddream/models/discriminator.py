"""The adversary of the autoencoder's GAN term."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """A small PatchGAN: one real/fake logit per 4x4-pixel patch of the 32x32 image."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width * 2, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width * 2, width * 2, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width * 2, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
