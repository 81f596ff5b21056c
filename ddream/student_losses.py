"""What the one-step student learns from, beside the teacher's pairs.

- `one_step_loss`: its objective against the straight path's velocity (`[distill] loss`): L2,
  pseudo-Huber (sCM / rectified flow++), or L2 between both end points decoded by the frozen
  autoencoder (pixel space).
- `LatentCritic`: an adversarial term (`[distill] adversarial`, off by default) that lets the student
  move past its teacher: a small class-conditional critic tells the student's unguided (w = 1)
  one-step latents from the encoded training digits, and the student learns to fool it (hinge loss).
  The critic sees latents, never the features `ddream eval` scores with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ddream.flow import guidance_at
from ddream.runtime import autocast, training_dtype
from ddream.train import adamw


def one_step_loss(
    kind: str,
    v: torch.Tensor,
    x0: torch.Tensor,
    eps: torch.Tensor,
    xt: torch.Tensor,
    tb: torch.Tensor,
    decode=None,
) -> torch.Tensor:
    """The student's loss for velocity v at x_t against the straight path's eps - x0. `decode`
    (standardised latents -> pixels, frozen) serves kind "pixel"."""
    target = eps - x0
    if kind == "huber":  # pseudo-Huber, c as in sCM / iCT for this many dimensions
        c = 0.00054 * v[0].numel() ** 0.5
        return ((v - target).pow(2).flatten(1).sum(1) + c * c).sqrt().sub(c).mean()
    if kind == "pixel":  # the end point of its step and the teacher's, both decoded
        ours = decode(xt - tb * v)
        with torch.no_grad():
            theirs = decode(x0)
        return F.mse_loss(ours, theirs)
    return F.mse_loss(v, target)


class LatentCritic(nn.Module):
    """A class-conditional critic of (standardised) latents: an MLP with a projection of the class
    (Miyato & Koyama 2018), its score a real number per row."""

    def __init__(self, latent_dim: int, num_classes: int, width: int = 256) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(latent_dim, width), nn.LeakyReLU(0.2),
            nn.Linear(width, width), nn.LeakyReLU(0.2),
        )  # fmt: skip
        self.out = nn.Linear(width, 1)
        self.embed = nn.Embedding(num_classes, width)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.body(z.flatten(1))
        return self.out(h).squeeze(1) + (self.embed(y) * h).sum(1)


class Adversary:
    """The critic, its optimiser, and the two halves of a hinge-GAN step on the student."""

    def __init__(self, latent_dim: int, num_classes: int, lr: float, device: torch.device) -> None:
        self.critic = LatentCritic(latent_dim, num_classes).to(device)
        self.opt = torch.optim.Adam(self.critic.parameters(), lr=lr, betas=(0.5, 0.999))
        self.device = device

    def unguided(
        self, student: nn.Module, shape: torch.Size, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's one step from fresh noise at w = 1 (its unguided end), for random classes:
        (latents with gradients to the student, classes)."""
        n = shape[0]
        noise = torch.randn(shape, generator=gen).to(self.device)
        y = torch.randint(0, student.cfg.num_classes, (n,), generator=gen).to(self.device)
        ones = torch.ones(n, device=self.device)
        with autocast(self.device):
            v = student(noise, ones, y, ones if student.guidance_input else None).float()
        return noise - v, y

    def student_term(self, fake: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The student's hinge-GAN loss for its one-step latents `fake` (gradients to the student)."""
        self.critic.requires_grad_(False)
        with autocast(self.device):
            score = self.critic(fake, y).float()
        self.critic.requires_grad_(True)
        return -score.mean()

    def critic_step(self, fake: torch.Tensor, real: torch.Tensor, y_fake, y_real) -> torch.Tensor:
        """One hinge step of the critic: real latents above +1, the student's below -1."""
        with autocast(self.device):
            loss = (
                F.relu(1 - self.critic(real, y_real).float()).mean()
                + F.relu(1 + self.critic(fake.detach(), y_fake).float()).mean()
            )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()


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
