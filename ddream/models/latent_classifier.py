"""A small classifier of (standardised) latents, and classifier guidance for the teacher with it.

Classifier-free guidance sharpens every digit: its implicit classifier (v_cond - v_null) is never
sure, so it pulls the whole class toward its mode and costs variety. An explicit classifier of the
denoised estimate is sure of most digits, and there its log-probability has no slope: guidance by it
moves only the digits it finds ambiguous (Dhariwal & Nichol 2021's classifier guidance, applied to
the estimate x0 = x_t - t v as in universal guidance). It sees latents, never the pixels or the
features `ddream eval` scores with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LatentClassifier(nn.Module):
    """(B, C, S, S) standardised latents -> class logits: a two-hidden-layer MLP."""

    def __init__(self, latent_dim: int, num_classes: int, width: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, num_classes),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.flatten(1))

    def log_prob_slope(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """d log p(y | z) / dz for each row, in float32, with or without inference mode around."""
        with torch.inference_mode(False), torch.enable_grad():
            with torch.autocast(z.device.type, enabled=False):
                z = z.float().clone().requires_grad_(True)  # clones: not inference tensors
                log_p = F.log_softmax(self(z), dim=1).gather(1, y[:, None].clone()).sum()
                (slope,) = torch.autograd.grad(log_p, z)
        return slope


class ClassifierGuided(nn.Module):
    """A guided teacher (the DiT, or the DiT autoguided) whose velocity also steps its denoised
    estimate up the classifier's log-probability of the wanted class:
        v' = v - s * d log p(y | x_t - t v) / dx0
    (x moves toward t = 0 along -v, so subtracting the slope moves the digit toward its class).
    The scale `cfg_scale` of classifier-free guidance passes through to the model."""

    guidance_input = False

    def __init__(self, model: nn.Module, classifier: LatentClassifier, scale: float) -> None:
        super().__init__()
        self.model, self.classifier, self.scale = model, classifier, scale
        self.cfg = model.cfg

    def forward_with_cfg(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, cfg_scale: float | torch.Tensor
    ) -> torch.Tensor:
        v = self.model.forward_with_cfg(x, t, y, cfg_scale)
        x0 = x.float() - t.float().view(-1, *([1] * (x.dim() - 1))) * v.float()
        return v - (self.scale * self.classifier.log_prob_slope(x0, y)).to(v.dtype)


class PixelClassifier(nn.Module):
    """(B, 1, 32, 32) decoded digits in [-1, 1] -> class logits: three strided convolutions (no
    pooling; not `ddream eval`'s network, which pools 28x28 digits) and a linear head."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1), nn.SiLU(),  # 16x16
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.SiLU(),  # 8x8
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.SiLU(),  # 4x4
            nn.Flatten(), nn.Linear(16 * 4 * width, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
