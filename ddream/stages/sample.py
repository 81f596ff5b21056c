"""`ddream sample`: digits drawn by the sampler (ddream/sampler.py), written as a PNG grid, a GIF of the
trajectory and/or an .npz of raw images and labels; and morphs between two classes or two seeds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ddream.limits import check_picture
from ddream.render import grid, write_gif, write_npz, write_png
from ddream.sampler import Sampler, SampleRequest, class_rows, gif_frames, morph_images
from ddream.state import StateDir


def sample(
    state: StateDir,
    req: SampleRequest,
    *,
    device: torch.device,
    grid_path: Path | None,
    gif_path: Path | None,
    npz_path: Path | None,
    scale: int = 1,
    labels_on: bool = True,
) -> dict[str, Any]:
    """Generate and write the requested outputs; returns a summary for the CLI."""
    sampler = Sampler.from_state(state, device, req.model, req.dtype)
    req = sampler.resolve(req)
    labels, ncols = class_rows(req.n, req.classes)
    if grid_path is not None or gif_path is not None:  # before any work, not after it
        frames = gif_frames(sampler, req) if gif_path is not None else 1
        check_picture(req.n, ncols, scale, frames)
    row_labels = [str(int(labels[i])) for i in range(0, req.n, ncols)] if labels_on else None
    t0 = time.perf_counter()
    images, traj = sampler.generate(labels, req, keep_trajectory=gif_path is not None)
    elapsed = time.perf_counter() - t0
    written = []
    if grid_path is not None:
        write_png(grid_path, grid(images, ncols, scale=scale, row_labels=row_labels))
        written.append(str(grid_path))
    if gif_path is not None:
        frames = [grid(sampler.decode(z), ncols, scale=scale, row_labels=row_labels) for z in traj]
        write_gif(gif_path, frames)
        written.append(str(gif_path))
    if npz_path is not None:
        write_npz(npz_path, images, labels)
        written.append(str(npz_path))
    return {
        "n": req.n,
        "model": req.model,
        "decoder": sampler.decoder_name,
        "dtype": sampler.dtype,
        "steps": req.steps,
        "cfg": req.cfg,
        "solver": req.solver,
        "cfg_interval": list(req.cfg_interval) if req.cfg_interval else None,
        "seed": req.seed,
        "seconds": round(elapsed, 3),
        "digits_per_s": round(req.n / max(elapsed, 1e-9), 1),
        "written": written,
    }


def morph(
    state: StateDir,
    req: SampleRequest,
    start: int,
    end: int,
    *,
    between: str,
    frames: int,
    device: torch.device,
    gif_path: Path | None,
    grid_path: Path | None,
    scale: int = 1,
) -> dict[str, Any]:
    """A GIF that morphs from `start` to `end`: two classes (same noise, the conditional velocities
    mixed), or two seeds (same class, the noise slerped). Each frame holds req.n digits."""
    sampler = Sampler.from_state(state, device, req.model, req.dtype)
    req = sampler.resolve(req)
    check_picture(req.n, min(req.n, 10), scale, 2 * frames - 2 if gif_path is not None else 1)
    if grid_path is not None:  # one row per digit, one column per frame
        check_picture(req.n * frames, frames, scale)
    weights = torch.linspace(0.0, 1.0, frames).tolist()
    strip = morph_images(sampler, req, start, end, between, weights)
    pictures = [grid(images, min(len(images), 10), scale=scale) for images in strip]
    written = []
    if gif_path is not None:
        # there and back again, so that the loop has no jump
        write_gif(gif_path, pictures + pictures[-2:0:-1], frame_ms=90, hold_ms=90)
        written.append(str(gif_path))
    if grid_path is not None:  # one row per digit, one column per frame
        cells = torch.stack(strip, dim=1).flatten(0, 1)
        write_png(grid_path, grid(cells, frames, scale=scale))
        written.append(str(grid_path))
    return {"between": between, "from": start, "to": end, "frames": frames, "written": written}
