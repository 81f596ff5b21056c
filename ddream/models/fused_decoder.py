"""The DC-AE decoder rewritten for inference: the same function, fewer passes over memory.

Two exact rewrites (the digits change by float rounding only, tests/test_fused_decoder.py):
- an up-step computes pixel_shuffle(conv(x)) + pixel_shuffle(dup(x)); both terms are linear in x and
  the channel duplication is a 1x1 convolution with 0/1 weights, so it folds into the 3x3 kernel's
  centre tap: one convolution and one shuffle instead of two shuffles, a repeat and an add (the
  decoder's input convolution and its duplicating shortcut fold the same way);
- the pixel shuffle is done as one reshape-permute of channels-last memory, which is what the
  convolutions read and write, instead of torch's generic kernel.
Decoding runs in chunks small enough for the activations to stay in the CPU's cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ddream.models.autoencoder import Decoder


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


def pixel_shuffle_nhwc(x: torch.Tensor) -> torch.Tensor:
    """F.pixel_shuffle(x, 2), done as one copy in channels-last layout (input channel 4c + 2i + j
    goes to output channel c at (2h + i, 2w + j))."""
    b, c4, h, w = x.shape
    c = c4 // 4
    nhwc = x.permute(0, 2, 3, 1).reshape(b, h, w, c, 2, 2)
    out = nhwc.permute(0, 1, 4, 2, 5, 3).reshape(b, 2 * h, 2 * w, c)
    return out.permute(0, 3, 1, 2)  # a channels-last view of (b, c, 2h, 2w)


class FusedDecoder(nn.Module):
    """Inference-only copy of a trained DC-AE `Decoder` (it shares the residual blocks' weights)."""

    def __init__(self, decoder: Decoder, chunk: int = 256) -> None:
        super().__init__()
        self.chunk = chunk
        self.inp = fold_duplication(decoder.inp)
        self.mid = decoder.mid
        self.ups = nn.ModuleList(fold_duplication(stage[0].conv) for stage in decoder.stages)
        self.blocks = nn.ModuleList(nn.Sequential(*stage[1:]) for stage in decoder.stages)
        self.out = decoder.out
        self.eval().to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._decode(part) for part in z.split(self.chunk)])

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.inp(z.contiguous(memory_format=torch.channels_last)))
        for up, blocks in zip(self.ups, self.blocks, strict=True):
            h = blocks(pixel_shuffle_nhwc(up(h)))
        return self.out(F.silu(h))


def inference_decoder(decoder: nn.Module, device: torch.device) -> nn.Module:
    """The fastest exact form of a trained decoder: fused for DC-AE decoders, channels-last for the
    others (the digitdreamer preset's plain decoder). Chunks of 256 suit a CPU's cache; a GPU wants
    large batches."""
    if isinstance(decoder, Decoder):
        return FusedDecoder(decoder, chunk=256 if device.type == "cpu" else 16384)
    return decoder.eval().to(memory_format=torch.channels_last)
