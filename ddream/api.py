"""ddream from Python (a notebook, a script): load a state dir, draw digits, reconstruct images, read the
latents, as tensors or PIL images, through the same functions the CLI's stages call.

    import ddream
    model = ddream.load("ddream-state")
    digits = model.sample(classes=[3, 8], n=16, seed=0)   # uint8 (16, 28, 28)
    eights = model.edit(digits, to=8)                      # the same hands, as 8s
    done = model.complete(digits, keep="top", n=4)         # .images (16, 4, 28, 28), .posterior
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddream.artifacts import Latents, load_ae, load_latents
from ddream.completer import Completer, Completion
from ddream.editor import API_NAMES as EDIT_API_NAMES
from ddream.editor import EDIT_STRENGTH, Editor
from ddream.errors import BadInput
from ddream.masks import keep_mask
from ddream.runtime import pick_device, sampling_dtype
from ddream.sampler import API_NAMES, Sampler, SampleRequest, class_rows
from ddream.stages.reconstruct import round_trip
from ddream.state import StateDir
from ddream.userimage import read_user_array, read_user_image


class Model:
    """The trained models of one state dir, loaded when first used and checked as the CLI checks
    them (missing, stale or corrupt stages raise one-line errors). Read-only."""

    def __init__(
        self, state_dir: str | Path = "ddream-state", device: str = "auto", dtype: str = "auto"
    ) -> None:
        self.state = StateDir(state_dir)
        self.device = pick_device(device)
        self.dtype = sampling_dtype(self.device, dtype)  # what sampling computes in: fp32 or bf16
        self._samplers: dict[str, Sampler] = {}
        self._ae = None
        self._editor: Editor | None = None
        self._completer: Completer | None = None

    def sampler(self, model: str = "auto") -> Sampler:
        """The student (one step, guidance an input) or the teacher (the DiT's guided ODE)."""
        if model not in self._samplers:
            self._samplers[model] = Sampler.from_state(self.state, self.device, model, self.dtype)
        return self._samplers[model]

    def sample(
        self,
        classes: Iterable[int] = range(10),
        n: int = 100,
        seed: int = 0,
        model: str = "auto",
        steps: int | None = None,
        cfg: float | None = None,
    ) -> torch.Tensor:
        """n digits, uint8 (n, 28, 28), laid out class by class as `ddream sample` draws them;
        the same seed gives the same digits. steps/cfg None: the model's own defaults."""
        sampler = self.sampler(model)
        classes = _as_tuple(classes)
        req = SampleRequest(n=n, classes=classes, steps=steps, cfg=cfg, seed=seed, model=model)
        req = sampler.resolve(req, API_NAMES)  # every value checked as the command line checks it
        labels, _ = class_rows(req.n, req.classes)
        images, _ = sampler.generate(labels, req)
        return images.cpu()

    def reconstruct(self, images: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Image files, PIL images or arrays (framed as MNIST was, as `ddream reconstruct` does),
        or a float tensor (N, 28, 28) in [0, 1] -> reconstructions (N, 28, 28) in [0, 1] and the
        PSNR of each, through the autoencoder's own decoder."""
        digits = _digits(images, uint8=False)
        if self._ae is None:
            self._ae, _ = load_ae(self.state, self.device)
        return round_trip(self._ae, digits, self.device)

    def edit(
        self, images: Any, to: Any, strength: float = EDIT_STRENGTH, seed: int = 0
    ) -> torch.Tensor:
        """Each digit redrawn as class `to` (one class, or one a digit) in its own hand, as
        `ddream edit` does: uint8 (N, 28, 28). images: files, PIL images or arrays (framed as MNIST
        was), or a uint8 tensor (N, 28, 28) of framed digits; strength: 0-1 (editor.py)."""
        digits = _digits(images)
        if self._editor is None:
            self._editor = Editor.from_state(self.state, self.device, self.dtype)
        edited = self._editor.change_class(digits, _classes(to), strength, seed, EDIT_API_NAMES)
        return edited.images

    def complete(
        self, images: Any, keep: Any, n: int = 8, seed: int = 0, cls: int | None = None
    ) -> Completion:
        """K completions of each digit from the pixels `keep` marks, as `ddream complete` makes
        them: `.images` uint8 (N, K, 28, 28), `.labels` (N, K), `.posterior` (N, 10) (None with
        `cls`). keep: 'top', 'bottom', 'left', 'right', 'box X0 Y0 X1 Y1', or a bool tensor
        (28, 28) or (N, 28, 28), True where pixels are kept (of the framed digits)."""
        digits = _digits(images)
        masks = _masks(keep, len(digits))
        if self._completer is None:
            self._completer = Completer(self.sampler("auto"))
        return self._completer.complete(digits, masks, n, seed, cls, EDIT_API_NAMES)

    def latents(self, split: str = "test") -> Latents:
        """The encoder's latents of a split (`.latents` (N, C, 2, 2), `.labels`, `.mean`, `.std`)."""
        if split not in ("train", "test"):
            raise BadInput(f"latents: split {split!r}: train or test")
        latents, _ = load_latents(self.state, split)
        return latents


def _as_tuple(values: Any) -> tuple:
    """classes=3 means (3,); any other iterable but a string, its items; the sampler checks them."""
    if isinstance(values, (str, bytes)):
        return (values,)
    try:
        return tuple(values)
    except TypeError:
        return (values,)


def _digits(images: Any, uint8: bool = True) -> torch.Tensor:
    """Framed digits float (N, 28, 28) in [0, 1] from files, PIL images, arrays, or a tensor (N, 28,
    28): uint8 for edit and complete (as they return), floats in [0, 1] for reconstruct."""
    if isinstance(images, torch.Tensor):
        if images.dim() not in (2, 3) or tuple(images.shape[-2:]) != (28, 28):
            raise BadInput(f"images: a tensor of shape (N, 28, 28), not {tuple(images.shape)}")
        digits = images.reshape(-1, 28, 28).float()
        if uint8 and images.dtype == torch.uint8:
            digits = digits / 255.0
        return digits
    items = images if isinstance(images, (list, tuple)) else [images]
    if not items:
        raise BadInput("images: give at least one image")
    return torch.stack([_framed(item) for item in items])


def _classes(to: Any) -> torch.Tensor:
    values = to.tolist() if isinstance(to, torch.Tensor) else to
    return torch.as_tensor(_as_tuple(values) if not isinstance(values, int) else (values,))


def _masks(keep: Any, n: int) -> torch.Tensor:
    """`keep` as (n, 28, 28) bool, each mask checked (not empty, not everything)."""
    if isinstance(keep, str):
        return keep_mask(keep, "keep").expand(n, -1, -1)
    masks = torch.as_tensor(keep, dtype=torch.bool)
    if masks.dim() == 2:
        return keep_mask(masks).expand(n, -1, -1)
    if masks.dim() != 3 or len(masks) != n:
        raise BadInput(f"keep: a (28, 28) mask, or one for each of the {n} digits")
    return torch.stack([keep_mask(m, f"keep[{i}]") for i, m in enumerate(masks)])


def _framed(item: Any) -> torch.Tensor:
    if isinstance(item, (str, Path)):
        return read_user_image(Path(item))
    return read_user_array(np.asarray(item), name="the image")


def load(
    state_dir: str | Path = "ddream-state", device: str = "auto", dtype: str = "auto"
) -> Model:
    """The models of a state dir (or an exported model folder), ready to sample and reconstruct;
    `dtype`: what sampling computes in (auto: bf16 where the hardware has it, fp32, bf16)."""
    return Model(state_dir, device, dtype)


def to_pil(images: torch.Tensor) -> list:
    """uint8 (N, 28, 28) digits (or floats in [0, 1]) as PIL images."""
    from PIL import Image

    arr = images.detach().cpu()
    if arr.dtype != torch.uint8:
        arr = (arr.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return [Image.fromarray(a) for a in arr.reshape(-1, 28, 28).numpy()]


def grid(images: torch.Tensor, ncols: int = 10, scale: int = 2):
    """Digits as one PIL picture of `ncols` columns, as the CLI's PNG grids."""
    from PIL import Image

    from ddream.render import grid as picture

    arr = images.detach().cpu()
    if arr.dtype != torch.uint8:
        arr = (arr.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return Image.fromarray(picture(arr.reshape(-1, 28, 28), ncols, scale=scale))
