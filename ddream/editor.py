"""Editing a person's digit with a trained model, both ways measured in benchmarks/edit.py:

- **change its class, keep its hand** (`Editor.change_class`): FlowEdit (Kulikov et al., arXiv
  2412.08629) on the teacher's ODE, with the source's class, as the teacher itself reads it, in the
  place of the source prompt. The edit starts `strength` of the way from data to noise and takes
  ceil(EDIT_STEPS x strength) Euler steps, each of EDIT_NOISES guided evaluations of the source and the
  target velocity; --to the source's own class changes nothing (the two velocities cancel), so an
  identity edit returns the autoencoder's reconstruction.
- **complete it from the pixels kept** (`completer.py`).

The source's class is read by the teacher: the class whose conditional velocity best predicts the
flow's noise-minus-data at READ_TIMES points of the path (a diffusion classifier; 97.9% of MNIST's
test digits). Never `ddream eval`'s network, which scores the results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ddream.artifacts import load_ae
from ddream.data import to_model
from ddream.errors import BadInput
from ddream.flow import guided_velocity
from ddream.limits import number, whole
from ddream.runtime import autocast, rows_per_call, seeded
from ddream.sampler import Sampler
from ddream.state import StateDir

EDIT_STEPS = 12  # teacher steps over the whole path: an edit at strength S takes ceil(12 S)
EDIT_STRENGTH = 0.8  # the default: 98.1% of edits read as their target (benchmarks/edit.py)
EDIT_CFG = 1.5  # the guidance of both velocities
EDIT_NOISES = 4  # noises averaged in each step (FlowEdit's n_avg)
READ_TIMES = 8  # points of the path at which the teacher reads the source's class
# how each door names the values of an edit or a completion in its one-line refusals
CLI_NAMES = {"to": "--to", "strength": "--strength", "n": "--n", "cls": "--class"}
API_NAMES = {"to": "to", "strength": "strength", "n": "n", "cls": "cls"}


def edit_steps(strength: float) -> int:
    """Teacher steps an edit at this strength takes (0 at strength 0: the reconstruction)."""
    return math.ceil(EDIT_STEPS * strength - 1e-9)


@dataclass
class Edited:
    images: torch.Tensor  # uint8 (N, 28, 28)
    sources: torch.Tensor  # (N,) the class the teacher read in each source
    steps: int


class Editor:
    """The teacher (its DiT's guided velocity, the autoencoder's decoder) and the encoder, ready to
    turn digits (float (N, 28, 28) in [0, 1], MNIST-framed) into latents and edit them."""

    def __init__(self, teacher: Sampler, encoder: torch.nn.Module) -> None:
        self.teacher, self.encoder = teacher, encoder.eval()
        self.device, self.dtype = teacher.device, teacher.dtype

    @classmethod
    def from_state(cls, state: StateDir, device: torch.device, dtype: str = "auto") -> Editor:
        teacher = Sampler.from_state(state, device, "teacher", dtype)
        ae, _ = load_ae(state, device)
        return cls(teacher, ae.encoder)

    @property
    def num_classes(self) -> int:
        return self.teacher.dit.cfg.num_classes

    @torch.inference_mode()
    def latents(self, digits: torch.Tensor) -> torch.Tensor:
        """MNIST-framed digits in [0, 1] -> the teacher's standardised latents."""
        x = to_model((digits.float().clamp(0, 1) * 255).round().to(torch.uint8)).to(self.device)
        with autocast(self.device, self.dtype):
            z = self.encoder(x).float()
        return self.teacher.stats.standardise(z)

    def _velocity(self, labels: torch.Tensor, cfg: float):
        rows = rows_per_call("dit", self.device, self.dtype) or len(labels)
        cast = lambda: autocast(self.device, self.dtype)  # noqa: E731
        return guided_velocity(self.teacher.dit, labels.to(self.device), cfg, None, rows, cast)

    @torch.inference_mode()
    def read_class(self, z0: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """The class whose conditional velocity best predicts eps - z0 at READ_TIMES points of the
        path (the same noises for every class), (N,)."""
        n, k = len(z0), self.num_classes
        labels = torch.arange(k, device=self.device).repeat_interleave(n)
        velocity = self._velocity(labels, 1.0)
        errors = torch.zeros(k, n, device=self.device)
        for j, t in enumerate(torch.linspace(0.05, 0.95, READ_TIMES).tolist()):
            eps = torch.randn((1, *z0.shape[1:]), generator=seeded(seed, "read", j)).to(self.device)
            x_t = (1 - t) * z0 + t * eps
            v = velocity(x_t.repeat(k, 1, 1, 1), torch.full((n * k,), t, device=self.device))
            errors += (v - (eps - z0).repeat(k, 1, 1, 1)).pow(2).flatten(1).sum(1).view(k, n)
        return errors.argmin(0).cpu()

    @torch.inference_mode()
    def change_class(
        self,
        digits: torch.Tensor,
        to: torch.Tensor,
        strength: float = EDIT_STRENGTH,
        seed: int = 0,
        names: dict[str, str] = CLI_NAMES,
    ) -> Edited:
        """Each digit redrawn as class `to` in its own hand: FlowEdit from t = strength to 0."""
        to = check_classes(to, len(digits), self.num_classes, names["to"])
        strength = check_strength(strength, names["strength"])
        z0 = self.latents(digits)
        sources = self.read_class(z0)  # the same reading whatever the seed
        steps = edit_steps(strength)
        z = z0.clone()
        if steps:
            n, a = len(z0), EDIT_NOISES
            labels = torch.cat([to.repeat(a), sources.repeat(a)])  # target rows, then source rows
            velocity = self._velocity(labels, EDIT_CFG)
            ts = torch.linspace(strength, 0.0, steps + 1).tolist()
            for i in range(steps):
                t, dt = ts[i], ts[i + 1] - ts[i]
                # the same noises for every digit: an edit depends on its digit and the seed alone
                eps = torch.randn((a, 1, *z0.shape[1:]), generator=seeded(seed, "edit", i))
                z_src = ((1 - t) * z0 + t * eps.to(self.device)).flatten(0, 1)  # (a * n, ...)
                z_tar = z.repeat(a, 1, 1, 1) + z_src - z0.repeat(a, 1, 1, 1)
                v = velocity(
                    torch.cat([z_tar, z_src]), torch.full((2 * a * n,), t, device=self.device)
                )
                v_tar, v_src = v.chunk(2)
                z = z + dt * (v_tar - v_src).view(a, *z0.shape).mean(0)
        return Edited(self.teacher.decode(z).cpu(), sources, steps)


def check_strength(strength: float, name: str = "--strength") -> float:
    return number(strength, name, 0.0, 1.0)


def check_classes(classes, n: int, num_classes: int, name: str) -> torch.Tensor:
    """One class for every digit, or one each: (n,) int64 in [0, num_classes)."""
    values = classes.tolist() if isinstance(classes, torch.Tensor) else classes
    if isinstance(values, (int, float, str)):
        values = [values]
    values = [whole(c, name, 0, num_classes - 1) for c in values]
    if len(values) == 1:
        values = values * n
    if len(values) != n:
        raise BadInput(f"{name}: give one class, or one for each of the {n} digits")
    return torch.tensor(values, dtype=torch.long)
