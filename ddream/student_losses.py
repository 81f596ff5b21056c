"""What the one-step student learns from, beside the teacher's pairs.

- `one_step_loss`: its objective against the straight path's velocity (`[distill] loss`):
  pseudo-Huber (sCM / rectified flow++) or L2.
- `DistributionMatching` (`[distill] dmd`): a fake copy of the teacher that follows the student's
  own latents, and the student's term that moves them toward where the teacher puts its mass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ddream.flow import guidance_at
from ddream.runtime import autocast, training_dtype
from ddream.train import adamw


def one_step_loss(kind: str, v: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The student's loss for velocity v against the straight path's eps - x0."""
    target = eps - x0
    if kind == "huber":  # pseudo-Huber, c as in sCM / iCT for this many dimensions
        c = 0.00054 * v[0].numel() ** 0.5
        return ((v - target).pow(2).flatten(1).sum(1) + c * c).sqrt().sub(c).mean()
    return F.mse_loss(v, target)


class DistributionMatching:
    """Distribution matching (DMD, Yin et al. 2024; DMD2's two time scales): a "fake" copy of the
    teacher learns, by rectified flow, the distribution of the student's own one-step latents (at
    each row's class and w), and the student moves each of its latents x along the difference of
    the two denoised estimates at a noised x:  x0_fake - x0_real, where the real one is the guided
    teacher's (the same guides that drew the pairs). Unlike regression on pairs, it does not
    average across the places where the teacher's map jumps between classes: a latent between two
    classes is improbable under the teacher and is pushed to one side."""

    def __init__(
        self, teacher: nn.Module, real: nn.Module, interval, lr: float, device, t_range=(0.02, 0.98)
    ) -> None:
        from ddream.models.dit import DiT

        self.fake = DiT.started_from(teacher, True, device)
        self.opt = adamw(self.fake.parameters(), lr, weight_decay=0.0)
        self.real, self.interval, self.device, self.t_range = real, interval, device, t_range
        self.dtype = training_dtype(device, "student step")

    def _noised(self, x: torch.Tensor, gen: torch.Generator):
        """x on the straight path to fresh noise, one t a row in t_range: (x_t, t, t shaped as x
        broadcasts, the noise)."""
        lo, hi = self.t_range
        t = (lo + (hi - lo) * torch.rand(len(x), generator=gen)).to(self.device)
        eps = torch.randn(x.shape, generator=gen).to(self.device)
        tb = t.view(-1, *([1] * (x.dim() - 1)))
        return (1 - tb) * x + tb * eps, t, tb, eps

    def student_term(
        self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        """The student's DMD loss for its one-step latents x (gradients to the student): each row
        noised to its own t, the teacher guided there as it was for the pairs."""
        xt, t, tb, _ = self._noised(x.detach(), gen)
        with torch.no_grad(), autocast(self.device, self.dtype):
            v_real = self.real.forward_with_cfg(xt, t, y, guidance_at(t, w, self.interval)).float()
            v_fake = self.fake(xt, t, y, w, dedupe=False).float()
        x0_real, x0_fake = xt - tb * v_real, xt - tb * v_fake
        norm = (x.detach() - x0_real).abs().flatten(1).mean(1).clamp_min(1e-3)
        grad = (x0_fake - x0_real) / norm.view(-1, *([1] * (x.dim() - 1)))
        target = (x - grad).detach()
        return 0.5 * (x - target).pow(2).flatten(1).sum(1).mean()

    def fake_step(
        self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        """One rectified-flow step of the fake model on the student's latents (detached)."""
        x = x.detach()
        xt, t, _, eps = self._noised(x, gen)
        with autocast(self.device, self.dtype):
            v = self.fake(xt, t, y, w, dedupe=False)
        loss = F.mse_loss(v.float(), eps - x)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()
