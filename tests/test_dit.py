"""The DiT's exact sampling shortcuts: one-token attention and conditioning once per (t, class)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ddream.config import DiTConfig
from ddream.models.dit import DiT, modulate


def reference_forward(model: DiT, x, t, y):
    """The DiT as written in the paper: full attention and per-row conditioning, no shortcut."""
    h = model.x_embed(model.patchify(x)) + model.pos_embed
    c = model.t_embed(t) + model.y_embed(y)
    for block in model.blocks:
        sh1, sc1, g1, sh2, sc2, g2 = block.adaLN_modulation(c).chunk(6, dim=1)
        a = modulate(block.norm1(h), sh1, sc1)
        b, n, w = a.shape
        q, k, v = (
            block.attn.qkv(a).view(b, n, 3, block.attn.heads, w // block.attn.heads)
        ).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, w)
        h = h + g1[:, None] * block.attn.proj(att)
        h = h + g2[:, None] * block.mlp(modulate(block.norm2(h), sh2, sc2))
    shift, scale = model.final.adaLN_modulation(c).chunk(2, dim=1)
    return model.unpatchify(model.final.linear(modulate(model.final.norm(h), shift, scale)))


def _trained_looking_dit(patch: int) -> DiT:
    torch.manual_seed(0)
    model = DiT(DiTConfig(latent_channels=4, width=32, depth=3, heads=2, patch_size=patch))
    for p in model.parameters():  # adaLN-Zero starts at zero: give every weight a value
        nn.init.normal_(p, std=0.2)
    return model.eval()


@pytest.mark.parametrize("patch", [2, 1])  # one token (the default), four tokens
def test_sampling_forward_draws_the_same_velocities_as_the_paper_forward(patch):
    model = _trained_looking_dit(patch)
    n = 64
    x = torch.randn(n, 4, 2, 2)
    # a sampling batch: one t for all rows, classes repeated, the null class for guidance
    t = torch.full((n,), 0.7)
    y = torch.tensor([0, 3, 3, 10] * (n // 4))
    with torch.inference_mode():
        fast = model(x, t, y)
    with torch.no_grad():
        ref = reference_forward(model, x, t, y)
    assert (fast - ref).abs().max() <= 1e-5
    # rows that share nothing (a training batch): still the same
    t2 = torch.rand(n)
    with torch.inference_mode():
        assert (model(x, t2, y) - reference_forward(model, x, t2, y)).abs().max() <= 1e-5


def test_conditioning_is_computed_once_per_distinct_t_and_class():
    model = _trained_looking_dit(2)
    seen = []
    model.blocks[0].adaLN_modulation.register_forward_hook(
        lambda m, inp, out: seen.append(out.shape[0])
    )
    x = torch.randn(500, 4, 2, 2)
    y = torch.arange(500) % 10
    with torch.inference_mode():
        model(x, torch.full((500,), 0.5), y)
    assert seen == [10]  # ten classes at one t, not 500 rows
    with torch.enable_grad():  # a rectified-flow batch (a t per row) keeps one row per sample
        model.train()(x[:8], torch.rand(8), y[:8])
    assert seen[-1] == 8
    with torch.enable_grad():  # the one-step student trains at t = 1 only: ten rows again
        model(x, torch.ones(500), y)
    assert seen[-1] == 10
    with torch.inference_mode():  # rectified-flow training asks for no search: one row each
        model(x, torch.full((500,), 0.5), y, dedupe=False)
    assert seen[-1] == 500


def test_student_training_gradients_match_the_paper_forward():
    """Conditioning once per distinct (t, class) under autograd: the same loss and the same
    gradient for every weight as the per-row forward (the student's batches are all at t = 1)."""
    model = _trained_looking_dit(2).train()
    x, y = torch.randn(256, 4, 2, 2), torch.arange(256) % 10
    t = torch.ones(256)
    target = torch.randn(256, 4, 2, 2)

    def grads(forward):
        model.zero_grad()
        loss = F.mse_loss(forward(x, t, y), target)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    fast_loss, fast = grads(model)
    ref_loss, ref = grads(lambda *a: reference_forward(model, *a))
    assert abs(float(fast_loss - ref_loss)) <= 1e-5
    for name, g in ref.items():
        assert (fast[name] - g).abs().max() <= 1e-5 * max(1.0, float(g.abs().max())), name


def test_one_token_attention_skips_queries_and_keys():
    model = _trained_looking_dit(2)
    calls = []
    original = F.scaled_dot_product_attention
    try:
        F.scaled_dot_product_attention = lambda *a, **k: calls.append(1) or original(*a, **k)
        with torch.inference_mode():
            model(torch.randn(4, 4, 2, 2), torch.rand(4), torch.arange(4))
    finally:
        F.scaled_dot_product_attention = original
    assert calls == []


def test_autoguidance_steps_away_from_the_weak_model_and_at_scale_1_is_the_dits_own():
    from ddream.models.dit import AutoGuided

    torch.manual_seed(0)
    cfg = DiTConfig(latent_channels=4, width=32, depth=2, heads=2)
    good, weak = DiT(cfg).eval(), DiT(cfg).eval()
    with torch.no_grad():  # adaLN-Zero starts every DiT at v = 0: give both weights of their own
        for p in (*good.parameters(), *weak.parameters()):
            p.normal_(0, 0.2)
    x, t, y = torch.randn(6, 4, 2, 2), torch.rand(6), torch.arange(6) % 10
    per_row = torch.tensor([1.0, 1.5, 2.0, 1.0, 1.5, 2.0])
    with torch.no_grad():
        for w in (1.0, 1.7, per_row):
            same = AutoGuided(good, weak, 1.0).forward_with_cfg(x, t, y, w)
            assert torch.allclose(same, good.forward_with_cfg(x, t, y, w), atol=1e-6)
        v_cond, v_weak = good(x, t, y), weak(x, t, y)
        v_null = good(x, t, torch.full_like(y, 10))
        want = v_cond + 0.5 * (v_cond - v_weak) + 0.7 * (v_cond - v_null)
        got = AutoGuided(good, weak, 1.5).forward_with_cfg(x, t, y, 1.7)
        assert torch.allclose(got, want, atol=1e-5)
        assert not torch.allclose(got, good.forward_with_cfg(x, t, y, 1.7), atol=1e-3)


def test_new_dits_use_the_exact_gelu_and_stored_ones_keep_the_tanh_form_they_learned():
    from ddream.config import from_dict, to_dict

    new = DiT(DiTConfig(latent_channels=4, width=32, depth=2, heads=2))
    assert {m.approximate for m in new.modules() if isinstance(m, nn.GELU)} == {"none"}
    # a DiT written before the setting existed: its config has no "gelu", and it learned with tanh
    stored = {
        k: v
        for k, v in to_dict(DiTConfig(latent_channels=4, width=32, depth=2, heads=2)).items()
        if k != "gelu"
    }
    torch.manual_seed(0)
    old = DiT(DiTConfig(**{**stored, "gelu": "tanh"}))
    for p in old.parameters():
        nn.init.normal_(p, std=0.5)
    loaded = DiT(from_dict(DiTConfig, stored))
    loaded.load_state_dict(old.state_dict())
    x, t, y = torch.randn(8, 4, 2, 2), torch.rand(8), torch.randint(0, 10, (8,))
    with torch.no_grad():
        assert torch.equal(loaded(x, t, y), old(x, t, y))
        exact = DiT(DiTConfig(**{**stored, "gelu": "exact"}))
        exact.load_state_dict(old.state_dict())
        assert not torch.equal(exact(x, t, y), old(x, t, y))  # the setting reaches the forward
