"""Which pixels of a 28x28 MNIST-framed digit a completion keeps: a named half (`--keep top`), a box
(`--box X0 Y0 X1 Y1`, in the framed digit's pixels, the ends exclusive) or a mask image drawn over the
source (white: keep; the same size as the source image, framed with it). True where a pixel is kept.

A mask that keeps nothing, or everything, or is not 28x28 is one line: there is nothing to complete
from, or nothing to complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ddream.errors import BadInput
from ddream.limits import whole
from ddream.userimage import Frame, read_gray

SIDE = 28
KEEP = ("top", "bottom", "left", "right")


def named_mask(name: str, option: str = "--keep") -> torch.Tensor:
    """The half a name keeps: top = rows 0-13, bottom = 14-27, left = columns 0-13, right = 14-27."""
    mask = torch.zeros(SIDE, SIDE, dtype=torch.bool)
    half = SIDE // 2
    if name == "top":
        mask[:half] = True
    elif name == "bottom":
        mask[half:] = True
    elif name == "left":
        mask[:, :half] = True
    elif name == "right":
        mask[:, half:] = True
    else:
        raise BadInput(f"{option} {name!r}: choose one of {', '.join(KEEP)} (or a box, a mask)")
    return mask


def box_mask(box: Any, name: str = "--box") -> torch.Tensor:
    """The pixels x0 <= x < x1, y0 <= y < y1 of the framed digit."""
    values = list(box) if isinstance(box, (list, tuple)) else str(box).split()
    if len(values) != 4:
        raise BadInput(f"{name}: give four numbers X0 Y0 X1 Y1 (pixels of the 28x28 digit)")
    x0, y0, x1, y1 = (whole(v, name, 0, SIDE) for v in values)
    if x1 <= x0 or y1 <= y0:
        raise BadInput(f"{name} {x0} {y0} {x1} {y1}: X1 must exceed X0 and Y1 exceed Y0")
    mask = torch.zeros(SIDE, SIDE, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return check_mask(mask, name)


def keep_mask(keep: Any, name: str = "keep") -> torch.Tensor:
    """A `keep` as the API takes it: a name of KEEP, 'box X0 Y0 X1 Y1', or a bool (28, 28) array."""
    if isinstance(keep, str):
        if keep.startswith("box"):
            return box_mask(keep.split()[1:], name)
        return named_mask(keep, name)
    return check_mask(torch.as_tensor(keep), name)


def check_mask(mask: torch.Tensor, name: str = "the mask") -> torch.Tensor:
    if tuple(mask.shape) != (SIDE, SIDE):
        raise BadInput(f"{name} is {tuple(mask.shape)}; give a 28x28 mask of the framed digit")
    mask = mask.bool()
    if not mask.any():
        raise BadInput(f"{name} keeps no pixel: there is nothing to complete from")
    if mask.all():
        raise BadInput(f"{name} keeps every pixel: there is nothing to complete")
    return mask


def read_mask(path: Path, frame: Frame | None) -> torch.Tensor:
    """A mask image (white: keep) drawn over the source image, framed as the source was; a test
    digit (frame None) takes a 28x28 mask as it is."""
    gray = read_gray(Path(path))
    shape = frame.shape if frame is not None else (SIDE, SIDE)
    if gray.shape != shape:
        raise BadInput(
            f"{path} is {gray.shape[1]}x{gray.shape[0]} pixels; the mask must be the size of the "
            f"image it marks ({shape[1]}x{shape[0]})"
        )
    keep = gray >= 0.5
    mask = frame.apply(keep) if frame is not None else torch.from_numpy(keep)
    return check_mask(mask, str(path))
