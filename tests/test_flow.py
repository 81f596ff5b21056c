"""Rectified flow, the DiT and its guidance, and the EMA."""

import math

import pytest
import torch
from torch import nn

from ddream.config import DiTConfig
from ddream.flow import flow_loss, sample_ode, sample_t
from ddream.models.dit import DiT
from ddream.train import EMA


class ToyVelocity(nn.Module):
    """A small MLP v(x, t) for 2-D points."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 2)
        )

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None]], dim=1))


def _toy_data(n, gen):
    """Two tight clusters at (+2, +2) and (-2, -2)."""
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    return sign[:, None] * torch.tensor([2.0, 2.0]) + 0.1 * torch.randn(n, 2, generator=gen)


@pytest.mark.parametrize("solver,steps", [("euler", 20), ("heun", 8)])
def test_flow_learns_to_map_noise_onto_a_toy_distribution(solver, steps):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = ToyVelocity()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(1500):
        x = _toy_data(256, gen)
        loss = flow_loss(model, x, sample_t(256, gen), torch.randn(256, 2, generator=gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
    out, _ = sample_ode(model, torch.randn(1000, 2, generator=gen), steps, solver)
    dist = (out.abs() - 2.0).abs().mean()  # distance of each coordinate from its cluster
    assert float(dist) < 0.35, float(dist)
    assert 0.3 < float((out[:, 0] > 0).float().mean()) < 0.7  # both clusters reached


def test_the_time_convention_is_t1_noise_t0_data():
    x, eps = torch.zeros(4, 2), torch.ones(4, 2)
    seen = {}

    def velocity(xt, t):
        seen["xt"] = xt
        return eps - x

    assert float(flow_loss(velocity, x, torch.ones(4), eps)) == 0.0
    assert torch.equal(seen["xt"], eps)  # at t=1 the input is pure noise
    # integrating the true velocity of a straight path lands exactly on the data
    out, traj = sample_ode(lambda xt, t: eps - x, eps, steps=3, keep_trajectory=True)
    assert torch.allclose(out, x) and len(traj) == 4


def test_logit_normal_timesteps_lie_in_0_1_and_crowd_the_middle():
    t = sample_t(20000, torch.Generator().manual_seed(0), logit_normal=True)
    u = sample_t(20000, torch.Generator().manual_seed(0), logit_normal=False)
    assert 0 < float(t.min()) and float(t.max()) < 1
    mid = lambda s: float(((s > 0.3) & (s < 0.7)).float().mean())  # noqa: E731
    assert mid(t) > mid(u) + 0.1


def _tiny_dit(patch=1):
    return DiT(DiTConfig(latent_channels=4, width=32, depth=2, heads=2, patch_size=patch))


@pytest.mark.parametrize("patch,tokens", [(1, 4), (2, 1)])
def test_dit_shapes_and_adaln_zero_start(patch, tokens):
    model = _tiny_dit(patch)
    x = torch.randn(5, 4, 2, 2)
    assert model.patchify(x).shape == (5, tokens, 4 * patch * patch)
    assert torch.equal(model.unpatchify(model.patchify(x)), x)
    out = model(x, torch.rand(5), torch.randint(0, 10, (5,)))
    assert out.shape == x.shape
    assert torch.equal(out, torch.zeros_like(out))  # adaLN-Zero: the untrained net outputs zero
    for block in model.blocks:
        assert float(block.adaLN_modulation[-1].weight.detach().abs().sum()) == 0.0


def test_guidance_is_one_batched_forward_with_the_null_class():
    model = _tiny_dit()
    for p in model.parameters():  # any non-zero weights, so the classes differ
        nn.init.normal_(p, std=0.2)
    calls = []
    model.register_forward_hook(lambda m, inp, out: calls.append(inp[2].clone()))
    x, t, y = torch.randn(3, 4, 2, 2), torch.rand(3), torch.tensor([1, 5, 9])
    guided = model.forward_with_cfg(x, t, y, cfg_scale=2.0)
    assert len(calls) == 1 and calls[0].tolist() == [1, 5, 9, 10, 10, 10]
    cond, null = model(x, t, y), model(x, t, torch.full_like(y, 10))
    assert torch.allclose(guided, null + 2.0 * (cond - null), atol=1e-5)
    assert torch.allclose(model.forward_with_cfg(x, t, y, cfg_scale=1.0), cond)


def test_ema_is_the_mean_at_first_then_reaches_its_configured_decay():
    model = nn.Linear(1, 1, bias=False)
    ema = EMA(model, decay=0.99)
    for n in range(1, 101):  # weights 1, 2, ..., 100: the first 100 updates average them
        with torch.no_grad():
            model.weight.fill_(float(n))
        ema.update(model)
        assert math.isclose(float(ema.shadow["weight"][0, 0]), (n + 1) / 2, rel_tol=1e-5)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema.update(model)  # from now on the decay is the configured 0.99, not a warm-up value
    assert math.isclose(float(ema.shadow["weight"][0, 0]), 0.99 * 50.5, rel_tol=1e-5)
