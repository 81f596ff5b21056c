"""`ddream edit` and `ddream complete`: a person's digit images (or test digits), framed as
`reconstruct` frames them, edited by the model (editor.py, completer.py) and written as pictures: each
source beside its edit, or a row of the source, what was kept and each completion.

Every input, mask and output path is checked before any work starts, and nothing is written on bad
input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ddream.artifacts import load_ae_with_dataset, load_dataset
from ddream.completer import HIDDEN_GREY, Completer
from ddream.data import to_uint8
from ddream.editor import Editor, check_classes, check_strength, edit_steps
from ddream.errors import BadInput
from ddream.masks import box_mask, named_mask, read_mask
from ddream.render import check_output, grid, write_npz, write_png
from ddream.state import StateDir
from ddream.userimage import Frame, framing, read_gray


@dataclass(frozen=True)
class Job:
    """What both commands read and write: image files or --test N, the pictures' and .npz's paths,
    and how they run."""

    images: list[Path] | None
    device: torch.device
    test: int | None = None
    out: Path | None = None
    npz: Path | None = None
    invert: bool | None = None
    data_dir: Path | None = None
    seed: int = 0
    scale: int | None = None


@dataclass
class Sources:
    digits: torch.Tensor  # float (N, 28, 28) in [0, 1], MNIST-framed
    names: list[str]  # each image's file, or "test digit I"
    frames: list[Frame | None]  # how each file was framed (None: a test digit, framed already)
    outputs: list[Path]  # where each picture goes (one shared path for test digits)


def read_sources(state: StateDir, job: Job, *, suffix: str, test_out: str) -> Sources:
    """The digits to edit, framed, and where their pictures go; every path checked first."""
    images, test, out = job.images, job.test, job.out
    if not images and test is None:
        raise BadInput("give image files, or --test N")
    if images and test is not None:
        raise BadInput("give image files or --test N, not both")
    if test is not None:
        target = check_output(out or Path(test_out), ".png", "--out")
        _, _, dataset = load_ae_with_dataset(state, torch.device("cpu"))
        _, split = load_dataset(state, job.data_dir, dataset["name"])
        n = min(test, len(split))
        digits = split.images[:n].float() / 255.0
        return Sources(digits, [f"test digit {i}" for i in range(n)], [None] * n, [target] * n)
    if out is not None and len(images) > 1:
        raise BadInput("--out names one file; give one image with it, or leave it out")
    framed = [framing(read_gray(p), invert=job.invert, name=str(p)) for p in images]
    outputs = [check_output(out or p.with_name(p.stem + suffix), ".png", "--out") for p in images]
    digits = torch.stack([d for d, _ in framed])
    return Sources(digits, [str(p) for p in images], [f for _, f in framed], outputs)


def _write(sources: Sources, pictures: list[torch.Tensor], ncols: int, scale: int) -> list[str]:
    """One picture per file, or all rows in one picture for test digits."""
    if sources.frames[0] is None:  # test digits: one grid
        write_png(sources.outputs[0], grid(torch.cat(pictures), ncols=ncols, scale=scale))
        return [str(sources.outputs[0])]
    for path, cells in zip(sources.outputs, pictures, strict=True):
        write_png(path, grid(cells, ncols=ncols, scale=scale))
    return [str(p) for p in sources.outputs]


def edit(state: StateDir, job: Job, *, to: int, strength: float) -> dict[str, Any]:
    """Each digit redrawn as class `to` in its own hand; pictures of each source beside its edit."""
    strength = check_strength(strength)
    check_classes([to], 1, 10, "--to")
    npz, seed, scale = job.npz, job.seed, job.scale or 4
    if npz is not None:
        check_output(npz, ".npz", "--npz")
    sources = read_sources(state, job, suffix=".edit.png", test_out="edits.png")
    editor = Editor.from_state(state, job.device)
    result = editor.change_class(sources.digits, torch.tensor([to]), strength, seed)
    if sources.frames[0] is None:  # test digits: ten sources a row, their edits below them
        pictures = []
        for start in range(0, len(result.images), 10):
            row = slice(start, start + 10)
            pad = torch.zeros(10 - len(result.images[row]), 28, 28, dtype=torch.uint8)
            pictures += [to_uint8(sources.digits[row]), pad, result.images[row], pad]
        written = _write(sources, pictures, ncols=10, scale=scale)
    else:
        pairs = [
            torch.stack([to_uint8(d), e])
            for d, e in zip(sources.digits, result.images, strict=True)
        ]
        written = _write(sources, pairs, ncols=2, scale=scale)
    if npz is not None:
        write_npz(npz, result.images, torch.full((len(result.images),), to))
        written.append(str(npz))
    return {
        "to": to,
        "strength": strength,
        "steps": edit_steps(strength),
        "seed": seed,
        "edits": [
            {"input": name, "read_as": int(c)}
            for name, c in zip(sources.names, result.sources.tolist(), strict=True)
        ],
        "written": written,
    }


def complete(
    state: StateDir,
    job: Job,
    *,
    keep: str | None = None,
    box: tuple[int, int, int, int] | None = None,
    mask: Path | None = None,
    n: int = 8,
    cls: int | None = None,
) -> dict[str, Any]:
    """K completions of each digit from its kept pixels, and the class posterior of each."""
    npz, seed, scale = job.npz, job.seed, job.scale or 2
    if sum(x is not None for x in (keep, box, mask)) != 1:
        raise BadInput("say what to keep: one of --keep top|bottom|left|right, --box, --mask")
    if mask is not None and job.images and len(job.images) > 1:
        raise BadInput("--mask marks one image; give one image with it")
    fixed = named_mask(keep) if keep is not None else box_mask(box) if box is not None else None
    if cls is not None:
        check_classes([cls], 1, 10, "--class")
    if npz is not None:
        check_output(npz, ".npz", "--npz")
    sources = read_sources(state, job, suffix=".complete.png", test_out="completions.png")
    if fixed is None:
        fixed = read_mask(mask, sources.frames[0])
    masks = fixed.expand(len(sources.digits), -1, -1)
    completer = Completer.from_state(state, job.device)
    result = completer.complete(sources.digits, masks, n=n, seed=seed, cls=cls)
    rows = []
    for d, m, filled in zip(sources.digits, masks, result.images, strict=True):
        kept = torch.where(m, to_uint8(d), torch.tensor(HIDDEN_GREY, dtype=torch.uint8))
        rows.append(torch.cat([to_uint8(d)[None], kept[None], filled]))
    written = _write(sources, rows, ncols=n + 2, scale=scale)
    if npz is not None:
        write_npz(npz, result.images.flatten(0, 1), result.labels.flatten())
        written.append(str(npz))
    return {
        "n": n,
        "class": cls,
        "seed": seed,
        "completions": [
            {
                "input": name,
                "classes": labels,
                "posterior": None if post is None else [round(float(p), 4) for p in post],
            }
            for name, labels, post in zip(
                sources.names,
                result.labels.tolist(),
                [None] * len(sources.names) if result.posterior is None else result.posterior,
                strict=True,
            )
        ],
        "written": written,
    }
