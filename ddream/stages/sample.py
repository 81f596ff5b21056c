"""`ddream sample`: noise -> ODE with classifier-free guidance -> un-standardise -> decoder -> digits,
written as a PNG grid, a GIF of the trajectory and/or an .npz of raw images and labels."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ddream.data import to_uint8, to_unit
from ddream.flow import sample_ode
from ddream.models.autoencoder import AutoEncoder
from ddream.models.dit import DiT
from ddream.render import grid, write_gif, write_npz, write_png
from ddream.stages.artifacts import Latents, load_ae, load_dit
from ddream.state import StateDir
from ddream.train import autocast, seeded


@dataclass(frozen=True)
class SampleRequest:
    n: int = 100
    classes: tuple[int, ...] = tuple(range(10))
    steps: int = 12
    cfg: float = 1.5
    solver: str = "euler"
    seed: int = 0


def class_rows(n: int, classes: tuple[int, ...]) -> tuple[torch.Tensor, int]:
    """Labels for n digits laid out class by class, and the grid's column count (one class a row)."""
    per_class = math.ceil(n / len(classes))
    labels = torch.tensor(classes).repeat_interleave(per_class)[:n]
    return labels, min(per_class, 20)


class Sampler:
    """A trained DiT + decoder, ready to turn (labels, seed) into digits."""

    def __init__(self, dit: DiT, ae: AutoEncoder, stats: Latents, device: torch.device) -> None:
        self.dit, self.ae, self.stats, self.device = dit, ae, stats, device
        self.shape = (dit.cfg.latent_channels, dit.cfg.latent_size, dit.cfg.latent_size)

    @classmethod
    def from_state(cls, state: StateDir, device: torch.device) -> Sampler:
        dit, stats, _ = load_dit(state, device)
        ae, ae_sha = load_ae(state, device)
        if stats.ae_sha != ae_sha:
            from ddream.checkpoint import BadArtifact

            raise BadArtifact(
                "the DiT was trained on latents of another autoencoder; rerun "
                "`ddream encode` and `ddream train-dit` (or `ddream all`)"
            )
        return cls(dit, ae, stats, device)

    def noise(self, n: int, seed: int) -> torch.Tensor:
        return torch.randn((n, *self.shape), generator=seeded(seed, "sample")).to(self.device)

    @torch.inference_mode()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised latents -> uint8 (N, 28, 28)."""
        with autocast(self.device):
            x = self.ae.decode(self.stats.unstandardise(z.float()))
        return to_uint8(to_unit(x))

    @torch.inference_mode()
    def generate(
        self,
        labels: torch.Tensor,
        req: SampleRequest,
        noise: torch.Tensor | None = None,
        keep_trajectory: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        labels = labels.to(self.device)
        z0 = self.noise(len(labels), req.seed) if noise is None else noise

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with autocast(self.device):
                return self.dit.forward_with_cfg(x, t, labels, req.cfg).float()

        z, traj = sample_ode(velocity, z0, req.steps, req.solver, keep_trajectory)
        return self.decode(z), traj


def sample(
    state: StateDir,
    req: SampleRequest,
    *,
    device: torch.device,
    grid_path: Path | None,
    gif_path: Path | None,
    npz_path: Path | None,
    scale: int = 1,
) -> dict[str, Any]:
    """Generate and write the requested outputs; returns a summary for the CLI."""
    sampler = Sampler.from_state(state, device)
    labels, ncols = class_rows(req.n, req.classes)
    t0 = time.perf_counter()
    images, traj = sampler.generate(labels, req, keep_trajectory=gif_path is not None)
    elapsed = time.perf_counter() - t0
    written = []
    if grid_path is not None:
        write_png(grid_path, grid(images, ncols, scale=scale))
        written.append(str(grid_path))
    if gif_path is not None:
        frames = [grid(sampler.decode(z), ncols, scale=scale) for z in traj]
        write_gif(gif_path, frames)
        written.append(str(gif_path))
    if npz_path is not None:
        write_npz(npz_path, images, labels)
        written.append(str(npz_path))
    return {
        "n": req.n,
        "steps": req.steps,
        "cfg": req.cfg,
        "solver": req.solver,
        "seed": req.seed,
        "seconds": round(elapsed, 3),
        "digits_per_s": round(req.n / max(elapsed, 1e-9), 1),
        "written": written,
    }
