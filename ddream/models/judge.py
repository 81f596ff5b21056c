"""The distill stage's judge: a small CNN that names decoded digits (never `ddream eval`'s network,
which pools 28x28 digits). It gives the student's class term its gradient and scores the student's
validation digits."""

from __future__ import annotations

import torch
from torch import nn


class PixelJudge(nn.Module):
    """(B, 1, 32, 32) decoded digits in [-1, 1] -> class logits: three strided convolutions (no
    pooling) and a linear head."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1), nn.SiLU(),  # 16x16
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.SiLU(),  # 8x8
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.SiLU(),  # 4x4
            nn.Flatten(), nn.Linear(16 * 4 * width, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
