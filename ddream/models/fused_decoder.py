"""The DC-AE decoder rewritten for inference: the same function, fewer passes over memory.

Two exact rewrites (the digits change by float rounding only, tests/test_fused_decoder.py):
- an up-step computes pixel_shuffle(conv(x)) + pixel_shuffle(dup(x)); both terms are linear in x and
  the channel duplication is a 1x1 convolution with 0/1 weights, so it folds into the 3x3 kernel's
  centre tap: one convolution and one shuffle instead of two shuffles, a repeat and an add (the
  decoder's input convolution and its duplicating shortcut fold the same way);
- the up-steps' output channels are reordered from torch's (c, i, j) to (i, j, c), so that the pixel
  shuffle of channels-last memory moves runs of 2c values rather than single ones: one reshape-permute
  copy, ~7x faster than torch's generic kernel on the up-steps' maps (BENCHMARKS.md).
`inference_decoder` runs it (and any other decoder) in chunks small enough for the activations to
stay in the CPU's cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ddream.models.autoencoder import Decoder
from ddream.runtime import rows_per_call


def fold_duplication(conv: nn.Conv2d) -> nn.Conv2d:
    """A copy of a 3x3 `conv` whose output also holds the channel-duplicating shortcut:
    output channel o adds input channel o // (out/in), as `repeat_interleave` lays them out."""
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, 3, padding=1, device=conv.weight.device)
    weight = conv.weight.detach().clone()
    repeat = conv.out_channels // conv.in_channels
    centre = weight[:, :, 1, 1]
    centre[torch.arange(conv.out_channels), torch.arange(conv.out_channels) // repeat] += 1.0
    folded.weight.data.copy_(weight)
    folded.bias.data.copy_(conv.bias.detach())
    return folded


def to_ijc(conv: nn.Conv2d) -> nn.Conv2d:
    """`conv` with its output channels reordered from F.pixel_shuffle's (c, i, j), channel 4c + 2i
    + j, to (i, j, c), channel (2i + j) * C + c, the order `pixel_shuffle_nhwc` reads."""
    c = conv.out_channels // 4
    order = torch.arange(4 * c).view(c, 4).T.reshape(-1)  # new channel k*C + c <- old 4c + k
    out = nn.Conv2d(conv.in_channels, 4 * c, 3, padding=1, device=conv.weight.device)
    out.weight.data.copy_(conv.weight.detach()[order])
    out.bias.data.copy_(conv.bias.detach()[order])
    return out


def pixel_shuffle_nhwc(x: torch.Tensor) -> torch.Tensor:
    """A pixel shuffle by 2 of channels laid out (i, j, c) (see `to_ijc`): input channel
    (2i + j) * C + c goes to output channel c at (2h + i, 2w + j). One copy of channels-last memory
    in runs of 2C values; for C = 1 it is F.pixel_shuffle(x, 2)."""
    b, c4, h, w = x.shape
    c = c4 // 4
    nhwc = x.permute(0, 2, 3, 1).reshape(b, h, w, 2, 2, c)
    out = nhwc.permute(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, c)
    return out.permute(0, 3, 1, 2)  # a channels-last view of (b, c, 2h, 2w)


def conv_2x2_matrix(conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """A 3x3, padding-1 convolution of a 2x2 map as the dense linear map it is there (every output
    position sees every input position): (weight, bias) for F.linear on rows flattened position-major,
    (y, x, channel), which is channels-last memory. One GEMM instead of a convolution on four pixels."""
    w = conv.weight.detach()  # (out, in, 3, 3)
    big = w.new_zeros(2, 2, w.shape[0], 2, 2, w.shape[1])  # (py, px, out, qy, qx, in)
    for py, px, qy, qx in torch.cartesian_prod(*[torch.arange(2)] * 4).tolist():
        big[py, px, :, qy, qx, :] = w[:, :, qy - py + 1, qx - px + 1]
    return big.reshape(4 * w.shape[0], 4 * w.shape[1]), conv.bias.detach().repeat(4)


def frozen_linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    """An nn.Linear holding (weight, bias), so that `.to()` moves it with the module that owns it."""
    linear = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
    linear.weight.data.copy_(weight)
    linear.bias.data.copy_(bias)
    return linear.requires_grad_(False)


class Head2x2(nn.Module):
    """The decoder up to its first 4x4 map (input convolution, the 2x2 residual blocks, the first
    up-step and its shuffle) as GEMMs on flattened 2x2 maps; the up-step's rows are ordered so that
    its output already is the shuffled 4x4 map in channels-last memory."""

    def __init__(self, inp: nn.Conv2d, mid: nn.Sequential, up: nn.Conv2d) -> None:
        super().__init__()
        self.inp = frozen_linear(*conv_2x2_matrix(inp))
        self.mid = nn.ModuleList(
            nn.ModuleList(
                [frozen_linear(*conv_2x2_matrix(b.conv1)), frozen_linear(*conv_2x2_matrix(b.conv2))]
            )
            for b in mid
        )
        w, b = conv_2x2_matrix(up)
        c = up.out_channels // 4
        # rows (py, px, (2i + j) * C + c) -> (2py + i, 2px + j, c): pixel shuffle as a row order
        order = torch.arange(4 * up.out_channels).view(2, 2, 2, 2, c).permute(0, 2, 1, 3, 4)
        self.up = frozen_linear(w[order.reshape(-1)], b[order.reshape(-1)])
        self.channels = c

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.inp(z.permute(0, 2, 3, 1).reshape(len(z), -1))
        for conv1, conv2 in self.mid:
            h = h + conv2(F.silu(conv1(F.silu(h))))
        out = self.up(h).view(len(z), 4, 4, self.channels)
        return out.permute(0, 3, 1, 2)  # a channels-last view of (b, c, 4, 4)


class FusedDecoder(nn.Module):
    """Inference-only copy of a trained DC-AE `Decoder` (it shares the residual blocks' weights)."""

    def __init__(self, decoder: Decoder, gemm_head: bool = True) -> None:
        super().__init__()
        self.inp = fold_duplication(decoder.inp)
        self.mid = decoder.mid
        self.ups = nn.ModuleList(
            to_ijc(fold_duplication(stage[0].conv)) for stage in decoder.stages
        )
        self.blocks = nn.ModuleList(nn.Sequential(*stage[1:]) for stage in decoder.stages)
        self.out = decoder.out
        self.shuffle = decoder.shuffle  # the output convolution's 4 channels are 2x2 pixels
        self.eval().to(memory_format=torch.channels_last)
        # gemm_head=False keeps the 2x2 stage as convolutions (benchmarks/sampling_parts.py)
        self.head = Head2x2(self.inp, self.mid, self.ups[0]) if gemm_head else self._conv_head

    @torch.inference_mode()
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.blocks[0](self.head(z))
        for up, blocks in zip(self.ups[1:], self.blocks[1:], strict=True):
            h = blocks(pixel_shuffle_nhwc(up(h)))
        out = self.out(F.silu(h))
        return pixel_shuffle_nhwc(out) if self.shuffle else out

    def _conv_head(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.inp(z.contiguous(memory_format=torch.channels_last)))
        return pixel_shuffle_nhwc(self.ups[0](h))


class Chunked(nn.Module):
    """A decoder run on slices of the batch (exact: no layer mixes digits), small enough on a CPU
    for a slice's activations to stay in its cache."""

    def __init__(self, decoder: nn.Module, chunk: int) -> None:
        super().__init__()
        self.decoder, self.chunk = decoder, chunk

    @torch.inference_mode()
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.decoder(part) for part in z.split(self.chunk)])


def inference_decoder(decoder: nn.Module, device: torch.device) -> nn.Module:
    """The fastest exact form of a trained decoder: fused for DC-AE decoders, channels-last for the
    others (the digitdreamer preset's plain decoder). Both decode in chunks: 256 digits suit a
    CPU's cache (the plain decoder 2-3x faster than on 20,000 at once, BENCHMARKS.md); a GPU wants
    large batches."""
    if isinstance(decoder, Decoder):
        fast = FusedDecoder(decoder)
    else:
        fast = decoder.eval().to(memory_format=torch.channels_last)
    return Chunked(fast, rows_per_call("decoder", device))
