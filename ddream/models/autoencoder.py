"""The F-16 autoencoder: 32x32x1 -> 2x2xC -> 32x32x1, deterministic, with DC-AE down/up-sampling.

DC-AE (arXiv 2410.10733) puts a non-parametric shortcut beside every learned resampling step:
space-to-channel (pixel unshuffle) then channel averaging going down, channel duplication then
channel-to-space (pixel shuffle) going up. The learned path only has to model the residual, which is
what lets a deep compression ratio train as easily as a shallow one.

DC-AE also crosses the first factor of 2 without a layer at full resolution when its first stage
has no blocks: a convolution and a pixel (un)shuffle (its project-in/out). `io = "shuffle"`, the
default, does the same, so nothing runs at 32x32; `io = "conv"` is the layout of the models trained
before it (a 32x32 stem and output convolution).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ddream.config import AEConfig, DistillConfig
from ddream.config_rules import validate
from ddream.errors import BadInput
from ddream.models.plain_autoencoder import PlainDecoder, PlainEncoder


# ---- non-parametric shortcuts ---------------------------------------------------------------------
def space_to_channel_avg(x: torch.Tensor, out_channels: int, factor: int = 2) -> torch.Tensor:
    """Pixel-unshuffle, then average groups of adjacent channels down to `out_channels`."""
    x = F.pixel_unshuffle(x, factor)
    b, c, h, w = x.shape
    if c % out_channels:
        raise ValueError(f"{c} channels do not split into {out_channels} groups")
    return x.view(b, out_channels, c // out_channels, h, w).mean(dim=2)


def channel_to_space_dup(x: torch.Tensor, out_channels: int, factor: int = 2) -> torch.Tensor:
    """Repeat each channel until there are out_channels*factor^2, then pixel-shuffle."""
    need = out_channels * factor * factor
    if need % x.shape[1]:
        raise ValueError(f"{x.shape[1]} channels do not repeat into {need}")
    return F.pixel_shuffle(x.repeat_interleave(need // x.shape[1], dim=1), factor)


def channel_avg(x: torch.Tensor, out_channels: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, out_channels, c // out_channels, h, w).mean(dim=2)


def channel_dup(x: torch.Tensor, out_channels: int) -> torch.Tensor:
    return x.repeat_interleave(out_channels // x.shape[1], dim=1)


# ---- blocks ----------------------------------------------------------------------------------
class ResBlock(nn.Module):
    """conv-SiLU-conv with a residual; the second conv starts at zero so each block starts as identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class DownBlock(nn.Module):
    """Halve the resolution: conv then pixel-unshuffle, plus the space-to-channel averaging shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if out_channels % 4 or (in_channels * 4) % out_channels:
            raise ValueError(
                f"DownBlock {in_channels}->{out_channels}: need 4 | out and out | 4*in"
            )
        self.out_channels = out_channels
        self.conv = nn.Conv2d(in_channels, out_channels // 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(self.conv(x), 2) + space_to_channel_avg(x, self.out_channels)


class UpBlock(nn.Module):
    """Double the resolution: conv then pixel-shuffle, plus the channel-duplicating shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if (out_channels * 4) % in_channels:
            raise ValueError(f"UpBlock {in_channels}->{out_channels}: need in | 4*out")
        self.out_channels = out_channels
        self.conv = nn.Conv2d(in_channels, out_channels * 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2) + channel_to_space_dup(x, self.out_channels)


# ---- the autoencoder -----------------------------------------------------------------------------
class Encoder(nn.Module):
    """32x32x1 -> 2x2xC."""

    def __init__(self, cfg: AEConfig) -> None:
        super().__init__()
        w = cfg.widths
        # io "shuffle": pixel-unshuffle to 16x16x4, the stem convolution there (DC-AE's project-in)
        self.shuffle = cfg.io == "shuffle"
        first = int(self.shuffle)
        self.stem = nn.Conv2d(4 if self.shuffle else 1, w[first], 3, padding=1)
        self.stages = nn.ModuleList()
        for i in range(first, 4):
            blocks = [ResBlock(w[i]) for _ in range(cfg.blocks[i])]
            self.stages.append(nn.Sequential(*blocks, DownBlock(w[i], w[i + 1])))
        self.mid = nn.Sequential(*[ResBlock(w[4]) for _ in range(cfg.blocks[4])])
        self.out = nn.Conv2d(w[4], cfg.latent_channels, 3, padding=1)
        self.latent_channels = cfg.latent_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(F.pixel_unshuffle(x, 2) if self.shuffle else x)
        for stage in self.stages:
            h = stage(h)
        h = self.mid(h)
        return self.out(F.silu(h)) + channel_avg(h, self.latent_channels)


class Decoder(nn.Module):
    """2x2xC -> 32x32x1 in [-1, 1] (unbounded while training; clamped when written)."""

    def __init__(self, cfg: AEConfig) -> None:
        super().__init__()
        w = cfg.widths
        self.width = w[4]
        self.inp = nn.Conv2d(cfg.latent_channels, w[4], 3, padding=1)
        self.mid = nn.Sequential(*[ResBlock(w[4]) for _ in range(cfg.blocks[4])])
        # io "shuffle": the output convolution at 16x16 makes 4 channels, pixel-shuffled to 32x32
        # (DC-AE's project-out); no layer runs at 32x32
        self.shuffle = cfg.io == "shuffle"
        first = int(self.shuffle)
        self.stages = nn.ModuleList()
        for i in reversed(range(first, 4)):
            blocks = [ResBlock(w[i]) for _ in range(cfg.blocks[i])]
            self.stages.append(nn.Sequential(UpBlock(w[i + 1], w[i]), *blocks))
        self.out = nn.Conv2d(w[first], 4 if self.shuffle else 1, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.inp(z) + channel_dup(z, self.width)
        h = self.mid(h)
        for stage in self.stages:
            h = stage(h)
        out = self.out(F.silu(h))
        return F.pixel_shuffle(out, 2) if self.shuffle else out


class AutoEncoder(nn.Module):
    """Deterministic (no KL) F-16 autoencoder."""

    def __init__(self, cfg: AEConfig) -> None:
        super().__init__()
        validate(cfg)
        self.cfg = cfg
        plain = cfg.arch == "digitdreamer"
        self.encoder = PlainEncoder(cfg) if plain else Encoder(cfg)
        self.decoder = PlainDecoder(cfg) if plain else Decoder(cfg)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def warm_start(small: Decoder, trained: torch.nn.Module) -> int:
    """Start the small decoder from the trained one's weights wherever a tensor has the same name
    and shape: a decoder with a residual block fewer (a pruned one) then starts within ~1.4 dB of
    the trained decoder instead of from noise (BENCHMARKS.md). Returns how many tensors it took."""
    theirs = trained.state_dict()
    mine = small.state_dict()
    taken = {k: v for k, v in theirs.items() if k in mine and mine[k].shape == v.shape}
    small.load_state_dict(taken, strict=False)
    return len(taken)


def decoder_config(ae_cfg: AEConfig, cfg: DistillConfig) -> AEConfig | None:
    """The small decoder's settings (the autoencoder's, with the distill widths), or None."""
    if not cfg.decoder_widths:
        return None
    if ae_cfg.arch != "dcae":
        raise BadInput("a small decoder can only imitate a DC-AE decoder; set decoder-widths to ()")
    return dataclasses.replace(ae_cfg, widths=cfg.decoder_widths, blocks=cfg.decoder_blocks)
