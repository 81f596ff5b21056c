"""Pictures: PNG grids of digits, GIFs of sampling trajectories, side-by-side reconstructions, .npz.

Every writer validates its path first and writes atomically, so a failure leaves no partial file.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from ddream.errors import BadInput
from ddream.files import atomic_write_bytes


def check_output(path: Path, suffix: str, option: str) -> Path:
    """An output path that ends in `suffix` and whose folder exists and is writable."""
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise BadInput(f"{option} {path}: the file name must end in {suffix}")
    if path.is_dir():
        raise BadInput(f"{option} {path} is a folder")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise BadInput(f"{option} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise BadInput(f"{option} {path}: folder {parent} is not writable")
    return path


def check_folder(path: Path, option: str) -> Path:
    """An output folder: an existing one, or a new one whose parent exists and is writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BadInput(f"{option} {path} is a file; name a folder")
    parent = path if path.is_dir() else path.parent
    parent = parent if str(parent) else Path(".")
    if not parent.is_dir():
        raise BadInput(f"{option} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise BadInput(f"{option} {path}: folder {parent} is not writable")
    return path


LABEL_WIDTH = 14  # pixels (before zoom) left of the grid for row labels


def grid(
    images: torch.Tensor,
    ncols: int,
    pad: int = 2,
    scale: int = 1,
    row_labels: list[str] | None = None,
) -> np.ndarray:
    """(N, 28, 28) uint8 -> one uint8 picture of `ncols` columns, cells separated by `pad` pixels,
    optionally with a label left of each row."""
    n, h, w = images.shape
    nrows = max(1, math.ceil(n / ncols))
    out = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad), 40, dtype=np.uint8)
    arr = images.cpu().numpy()
    for i in range(n):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y : y + h, x : x + w] = arr[i]
    if scale > 1:
        out = out.repeat(scale, axis=0).repeat(scale, axis=1)
    if row_labels:
        out = _label_rows(out, row_labels, (h + pad) * scale, pad * scale, scale)
    return out


def _label_rows(
    picture: np.ndarray, labels: list[str], row_height: int, top: int, scale: int
) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    width = max(LABEL_WIDTH, 7 * max(len(t) for t in labels) + 4)  # "1.5" needs more than "7"
    margin = np.full((picture.shape[0], width * scale), 40, dtype=np.uint8)
    canvas = Image.fromarray(np.concatenate([margin, picture], axis=1))
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=11 * scale)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        font = ImageFont.load_default()
    for r, text in enumerate(labels):
        y = top + r * row_height + (row_height - top) // 2
        draw.text((width * scale // 2, y), text, fill=230, font=font, anchor="mm")
    return np.asarray(canvas)


def write_png(path: Path, picture: np.ndarray) -> None:
    atomic_write_bytes(path, iio.imwrite("<bytes>", picture, extension=".png"))


def write_gif(
    path: Path, frames: list[np.ndarray], frame_ms: int = 120, hold_ms: int = 1500
) -> None:
    """A looping GIF; the last frame is held for `hold_ms`."""
    durations = [frame_ms] * (len(frames) - 1) + [hold_ms]
    data = iio.imwrite("<bytes>", np.stack(frames), extension=".gif", duration=durations, loop=0)
    atomic_write_bytes(path, data)


def write_npz(path: Path, images: torch.Tensor, labels: torch.Tensor) -> None:
    buf = io.BytesIO()
    np.savez(
        buf,
        images=images.cpu().numpy().astype(np.uint8),
        labels=labels.cpu().numpy().astype(np.int64),
    )
    atomic_write_bytes(path, buf.getvalue())
