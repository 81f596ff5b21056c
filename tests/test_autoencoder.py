"""The DC-AE blocks, the F-16 shape, and the GAN term's gradient."""

import pytest
import torch

from ddream.config import AEConfig
from ddream.models.autoencoder import (
    AutoEncoder,
    DownBlock,
    UpBlock,
    channel_to_space_dup,
    space_to_channel_avg,
)
from ddream.models.discriminator import PatchDiscriminator
from ddream.stages.train_ae import ae_losses


def test_down_and_up_blocks_change_resolution_and_width():
    x = torch.randn(3, 16, 8, 8)
    assert DownBlock(16, 32)(x).shape == (3, 32, 4, 4)
    assert UpBlock(16, 8)(x).shape == (3, 8, 16, 16)


def test_space_to_channel_shortcut_averages_the_unshuffled_pixels():
    x = torch.arange(2 * 4 * 4 * 4, dtype=torch.float32).view(2, 4, 4, 4)
    out = space_to_channel_avg(x, 8)  # 4 channels * 4 pixels = 16 -> groups of 2
    unshuffled = torch.nn.functional.pixel_unshuffle(x, 2)
    assert torch.equal(out[:, 0], (unshuffled[:, 0] + unshuffled[:, 1]) / 2)
    assert torch.equal(out[:, 7], (unshuffled[:, 14] + unshuffled[:, 15]) / 2)


def test_channel_to_space_shortcut_is_undone_exactly_by_the_space_to_channel_one():
    z = torch.randn(2, 8, 2, 2)
    up = channel_to_space_dup(z, 4)  # (2, 4, 4, 4)
    assert up.shape == (2, 4, 4, 4)
    assert torch.equal(space_to_channel_avg(up, 8), z)


def test_blocks_with_a_zero_learned_path_are_exactly_their_shortcuts():
    x = torch.randn(2, 16, 8, 8)
    down, up = DownBlock(16, 32), UpBlock(16, 8)
    for block in (down, up):
        torch.nn.init.zeros_(block.conv.weight)
        torch.nn.init.zeros_(block.conv.bias)
    assert torch.equal(down(x), space_to_channel_avg(x, 32))
    assert torch.equal(up(x), channel_to_space_dup(x, 8))


@pytest.mark.parametrize("latent_channels", [4, 8, 16])
@pytest.mark.parametrize("io", ["shuffle", "conv"])
def test_autoencoder_is_f16_with_configurable_latent_channels(latent_channels, io):
    ae = AutoEncoder(AEConfig(latent_channels=latent_channels, io=io))
    x = torch.randn(2, 1, 32, 32)
    z = ae.encode(x)
    assert z.shape == (2, latent_channels, 2, 2)
    assert ae.decode(z).shape == x.shape


def _conv_input_sizes(ae: AutoEncoder) -> set[int]:
    sizes: set[int] = set()
    for m in ae.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda mod, inp, out: sizes.add(inp[0].shape[-1]))
    ae(torch.randn(1, 1, 32, 32))
    return sizes


def test_shuffle_io_runs_no_layer_at_32x32_and_conv_io_does():
    assert max(_conv_input_sizes(AutoEncoder(AEConfig(io="shuffle")))) == 16
    assert max(_conv_input_sizes(AutoEncoder(AEConfig(io="conv")))) == 32


def test_shuffle_io_decoder_output_is_its_last_convolution_pixel_shuffled():
    torch.manual_seed(0)
    ae = AutoEncoder(AEConfig(io="shuffle")).eval()
    seen = {}
    ae.decoder.out.register_forward_hook(lambda mod, inp, out: seen.update(out=out))
    x = ae.decode(torch.randn(3, 16, 2, 2))
    assert seen["out"].shape == (3, 4, 16, 16)
    assert torch.equal(x, torch.nn.functional.pixel_shuffle(seen["out"], 2))


@pytest.mark.parametrize(
    "arch,widths,gan_loss",
    [
        ("dcae", (4, 8, 16, 16, 16), "hinge"),
        ("digitdreamer", (4, 8, 16, 32, 32), "bce"),
    ],
)
def test_gan_term_sends_gradient_into_the_autoencoder(arch, widths, gan_loss):
    torch.manual_seed(0)
    ae = AutoEncoder(AEConfig(arch=arch, widths=widths, latent_channels=4))
    disc = PatchDiscriminator(8)
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    _, _, gan, _ = ae_losses(ae, disc, x, gan_weight=1.0, use_gan=True, gan_loss=gan_loss)
    gan.backward()
    grads = [p.grad for p in ae.decoder.parameters() if p.grad is not None]
    assert grads, "no gradient reached the decoder"
    assert sum(float(g.abs().sum()) for g in grads) > 0
    enc = [p.grad for p in ae.encoder.parameters() if p.grad is not None]
    assert sum(float(g.abs().sum()) for g in enc) > 0


def test_gan_term_is_zero_and_gradient_free_before_it_starts():
    ae = AutoEncoder(AEConfig(widths=(4, 8, 16, 16, 16), latent_channels=4))
    disc = PatchDiscriminator(8)
    total, rec, gan, _ = ae_losses(
        ae, disc, torch.zeros(2, 1, 32, 32), gan_weight=1.0, use_gan=False
    )
    assert float(gan) == 0.0 and torch.equal(total, rec)


def test_digitdreamer_autoencoder_is_f16_with_a_sigmoid_output_and_no_shortcut():
    ae = AutoEncoder(AEConfig(arch="digitdreamer", widths=(4, 8, 16, 32, 32), latent_channels=8))
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    z = ae.encode(x)
    assert z.shape == (3, 8, 2, 2)
    out = ae.decode(z * 100).detach()  # the sigmoid bounds the output whatever the latent
    assert out.shape == x.shape and float(out.min()) >= -1 and float(out.max()) <= 1
    assert not any(isinstance(m, (DownBlock, UpBlock)) for m in ae.modules())
    total, rec, _, _ = ae_losses(
        ae, PatchDiscriminator(8), x, gan_weight=0.01, use_gan=False, recon_loss="bce"
    )
    assert float(rec.detach()) > 0 and torch.equal(total, rec)


def test_the_samplers_channels_last_decoding_draws_the_same_digits():
    """Sampler decodes with channels-last convolutions for speed; the digits must not change."""
    import copy

    from ddream.artifacts import Latents
    from ddream.config import DiTConfig
    from ddream.data import to_uint8, to_unit
    from ddream.models.dit import DiT
    from ddream.sampler import Sampler

    torch.manual_seed(0)
    cfg = AEConfig(widths=(4, 8, 16, 16, 16), latent_channels=4)
    ae = AutoEncoder(cfg).eval()
    for p in ae.parameters():  # leave the zero-initialised convs' identity start behind
        p.data.add_(torch.randn_like(p) * 0.05)
    plain = copy.deepcopy(ae)
    stats = Latents(
        torch.zeros(1, 4, 2, 2), torch.zeros(1), torch.rand(4), torch.rand(4) + 0.5, "x"
    )
    dit = DiT(DiTConfig(latent_channels=4, width=32, depth=1, heads=2)).eval()
    sampler = Sampler(dit, ae.decoder, stats, torch.device("cpu"), dtype="fp32")
    z = torch.randn(64, 4, 2, 2)
    got = sampler.decode(z)
    with torch.inference_mode():
        want = to_uint8(to_unit(plain.decode(stats.unstandardise(z))))
    assert got.shape == want.shape == (64, 28, 28)
    assert want.float().std() > 10  # the digits are not blank, so the comparison means something
    assert (got.int() - want.int()).abs().max() <= 1  # at most one grey level apart
