"""Rectified flow, minRF's convention, stated once:

    t = 1 is pure noise, t = 0 is data;  x_t = (1 - t) * x + t * eps;  the network predicts v = eps - x.

Sampling integrates dx/dt = v from t = 1 down to t = 0. This module knows nothing of the network
beyond `velocity(x, t) -> v`, nor of training loops.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SOLVERS = ("euler", "heun")


def sample_t(
    n: int, gen: torch.Generator, logit_normal: bool = True, uniform_share: float = 0.0
) -> torch.Tensor:
    """Training timesteps: logit-normal (SD3's choice, weighting the middle of the path) or uniform;
    `uniform_share` of a logit-normal batch is drawn uniformly instead, which puts more weight near
    t = 1, where every sample starts (logit-normal alone puts ~0.2% of its mass above 0.95)."""
    if not logit_normal:
        return torch.rand(n, generator=gen)
    t = torch.sigmoid(torch.randn(n, generator=gen))
    if uniform_share > 0:
        u = torch.rand(n, generator=gen)
        t = torch.where(torch.rand(n, generator=gen) < uniform_share, u, t)
    return t


def flow_loss(
    velocity: Velocity, x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """Mean squared error between the predicted and the straight-path velocity eps - x."""
    tb = t.view(-1, *([1] * (x.dim() - 1)))
    x_t = (1 - tb) * x + tb * eps
    return F.mse_loss(velocity(x_t, t).float(), (eps - x).float())


@torch.no_grad()
def sample_ode(
    velocity: Velocity,
    noise: torch.Tensor,
    steps: int,
    solver: str = "euler",
    keep_trajectory: bool = False,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Integrate from t=1 (noise) to t=0 in `steps` uniform steps; Heun costs two evaluations a step
    (one on its last step, which lands on t=0). Returns the end point and, if asked, every x_t on the way."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}")
    x = noise
    trajectory = [x] if keep_trajectory else []
    ts = torch.linspace(1.0, 0.0, steps + 1, device=noise.device)
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        dt = t_next - t  # negative
        tt = t.expand(x.shape[0])
        v = velocity(x, tt)
        x_euler = x + dt * v
        if solver == "heun" and i < steps - 1:
            v_next = velocity(x_euler, t_next.expand(x.shape[0]))
            x = x + dt * (v + v_next) / 2
        else:
            x = x_euler
        if keep_trajectory:
            trajectory.append(x)
    return x, trajectory


def cfg_mix(v_cond: torch.Tensor, v_null: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: the null velocity moved `scale` times as far as the class pulls it
    (scale 1: the conditional velocity)."""
    return v_null + scale * (v_cond - v_null)


def guided_velocity(
    model,
    labels: torch.Tensor,
    cfg: float | torch.Tensor,
    interval: tuple[float, float] | None,
    rows: int,
    cast,
) -> Velocity:
    """v(x, t) of a class-conditional model for these labels, guided by `cfg` (one scale, or one a
    row) wherever guidance_at says (cfg 1: the conditional pass alone), one call of
    `model.forward_with_cfg` per slice of `rows` rows, each inside the context `cast()` makes
    (autocast). The sampler's teacher and student and the distillation's teacher pairs all draw
    through it."""

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        scale = guidance_at(float(t[0]), cfg, interval)
        xs_, ts_, ys_ = x.split(rows), t.split(rows), labels.split(rows)
        scales = scale.split(rows) if isinstance(scale, torch.Tensor) else [scale] * len(xs_)
        parts = []
        for xs, ts, ys, ss in zip(xs_, ts_, ys_, scales, strict=True):
            with cast():
                parts.append(model.forward_with_cfg(xs, ts, ys, ss).float())
        return torch.cat(parts)

    return velocity


def guidance_at(
    t: float | torch.Tensor, cfg: float | torch.Tensor, interval: tuple[float, float] | None
) -> float | torch.Tensor:
    """The guidance scale at time t: `cfg` inside the interval (Kynkaanniemi et al. 2024: guidance
    only where it helps), 1 (the conditional velocity alone) outside it; no interval: always. A t a
    row (a tensor) gets a scale a row."""
    if interval is None:
        return cfg
    if isinstance(t, torch.Tensor):
        inside = (t >= interval[0]) & (t <= interval[1])
        return torch.where(inside, torch.as_tensor(cfg, dtype=torch.float32, device=t.device), 1.0)
    return cfg if interval[0] <= t <= interval[1] else 1.0
