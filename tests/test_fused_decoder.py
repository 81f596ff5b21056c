"""The fused inference decoder is the trained decoder, rewritten: same digits, fewer passes."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ddream.config import AEConfig
from ddream.models.autoencoder import Decoder
from ddream.models.fused_decoder import (
    Chunked,
    FusedDecoder,
    fold_duplication,
    pixel_shuffle_nhwc,
    to_ijc,
)


def _trained_looking_decoder(cfg: AEConfig) -> Decoder:
    torch.manual_seed(0)
    decoder = Decoder(cfg)
    for p in decoder.parameters():  # residual blocks start at zero: give every weight a value
        nn.init.normal_(p, std=0.05)
    return decoder.eval()


@pytest.mark.parametrize(
    "widths,blocks,latent,io",
    [
        ((8, 16, 32, 64, 64), (0, 1, 1, 1, 1), 16, "shuffle"),
        ((8, 16, 32, 64, 64), (0, 1, 1, 1, 1), 16, "conv"),
        ((4, 8, 16, 16, 16), (1, 0, 1, 0, 2), 4, "conv"),
    ],
)
def test_fused_decoder_decodes_the_same_digits(widths, blocks, latent, io):
    decoder = _trained_looking_decoder(
        AEConfig(widths=widths, blocks=blocks, latent_channels=latent, io=io)
    )
    z = torch.randn(600, latent, 2, 2)  # more than one chunk, and a partial last one
    with torch.inference_mode():
        plain = decoder(z)
    for gemm_head in (True, False):  # the 2x2 stage as matrix products, and as convolutions
        fused = Chunked(FusedDecoder(decoder, gemm_head=gemm_head), 256)(z)
        assert fused.shape == plain.shape == (600, 1, 32, 32)
        assert (fused - plain).abs().max() <= 1e-5 * max(1.0, float(plain.abs().max()))


def test_folding_adds_the_duplicating_shortcut_to_the_centre_tap():
    conv = nn.Conv2d(4, 16, 3, padding=1)
    x = torch.randn(3, 4, 5, 5)
    with torch.no_grad():
        assert torch.allclose(
            fold_duplication(conv)(x), conv(x) + x.repeat_interleave(4, dim=1), atol=1e-6
        )


def test_reordered_up_step_then_channels_last_shuffle_matches_torch():
    conv = nn.Conv2d(5, 12, 3, padding=1)
    x = torch.randn(2, 5, 3, 4)
    with torch.no_grad():
        want = F.pixel_shuffle(conv(x), 2)
        got = pixel_shuffle_nhwc(to_ijc(conv)(x.contiguous(memory_format=torch.channels_last)))
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got, want, atol=1e-6)
    one = torch.randn(2, 4, 3, 4).contiguous(memory_format=torch.channels_last)
    assert torch.equal(pixel_shuffle_nhwc(one), F.pixel_shuffle(one, 2))  # C = 1: no reorder


def test_to_moves_every_weight_of_the_fused_decoder_the_gemm_head_included():
    decoder = _trained_looking_decoder(AEConfig())
    z = torch.randn(8, 16, 2, 2, dtype=torch.float64)
    with torch.inference_mode():
        plain = copy.deepcopy(decoder).double()(z)
    fused = FusedDecoder(decoder).to(torch.float64)  # a head left in float32 would refuse z
    assert all(p.dtype == torch.float64 for p in fused.head.parameters())
    out = fused(z)
    assert out.dtype == torch.float64 and (out - plain).abs().max() <= 1e-5  # folded in float32


def test_plain_decoders_decode_in_chunks_with_the_same_digits():
    """The digitdreamer preset's decoder is not fused, but it too runs on slices of the batch on a
    CPU (a whole batch of 20,000 decoded 2-3x slower); slicing must not change a digit."""
    from ddream.models.fused_decoder import inference_decoder
    from ddream.models.plain_autoencoder import PlainDecoder
    from ddream.presets import PRESETS

    torch.manual_seed(0)
    decoder = PlainDecoder(PRESETS["digitdreamer"].ae).eval()
    z = torch.randn(600, 8, 2, 2)  # two full chunks of 256 and a partial one
    with torch.inference_mode():
        whole = decoder(z)
    calls = []
    decoder.register_forward_hook(lambda _m, args, _o: calls.append(len(args[0])))
    fast = inference_decoder(decoder, torch.device("cpu"))
    assert isinstance(fast, Chunked)
    out = fast(z)
    assert calls == [256, 256, 88]
    assert out.shape == whole.shape == (600, 1, 32, 32)
    assert (out - whole).abs().max() <= 1e-5
