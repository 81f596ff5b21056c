"""DigitDreamer's autoencoder, for the `digitdreamer` preset: plain GroupNorm blocks with a 1x1 conv and
pixel (un)shuffle to change resolution, no shortcut beside the learned path, a sigmoid output."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ddream.config import AEConfig


class PlainBlock(nn.Module):
    """Two 3x3 convs, each GroupNorm(1) + SiLU with a skip; the channel change on the first (encoder)
    or the second (decoder) conv, a 1x1 conv on that skip."""

    def __init__(self, in_channels: int, out_channels: int, change_first: bool = True) -> None:
        super().__init__()
        mid = out_channels if change_first else in_channels
        self.conv1 = nn.Conv2d(in_channels, mid, 3, padding=1)
        self.conv2 = nn.Conv2d(mid, out_channels, 3, padding=1)
        self.norm1, self.norm2 = nn.GroupNorm(1, mid), nn.GroupNorm(1, out_channels)
        self.skip1 = nn.Conv2d(in_channels, mid, 1) if in_channels != mid else nn.Identity()
        self.skip2 = nn.Conv2d(mid, out_channels, 1) if mid != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.norm1(self.conv1(x))) + self.skip1(x)
        return F.silu(self.norm2(self.conv2(x))) + self.skip2(x)


class PlainDown(nn.Module):
    """1x1 conv to a quarter of the channels, then pixel-unshuffle; no shortcut."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels // 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(self.conv(x), 2)


class PlainUp(nn.Module):
    """1x1 conv to four times the channels, then pixel-shuffle; no shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels * 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)


class PlainEncoder(nn.Module):
    """DigitDreamer's encoder: a plain block then a plain down-step at each resolution."""

    def __init__(self, cfg: AEConfig) -> None:
        super().__init__()
        w = cfg.widths
        layers: list[nn.Module] = [nn.Conv2d(1, w[0], 1)]
        for i in range(4):
            layers += [PlainBlock(w[i], w[i + 1]), PlainDown(w[i + 1])]
        layers.append(nn.Conv2d(w[4], cfg.latent_channels, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PlainDecoder(nn.Module):
    """DigitDreamer's decoder; its sigmoid output is mapped to [-1, 1] like the dcae decoder's."""

    def __init__(self, cfg: AEConfig) -> None:
        super().__init__()
        w = cfg.widths
        layers: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, w[4], 1)]
        for i in reversed(range(4)):
            layers += [PlainUp(w[i + 1], w[i + 1]), PlainBlock(w[i + 1], w[i], change_first=False)]
        layers.append(nn.Conv2d(w[0], 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(z)) * 2 - 1
