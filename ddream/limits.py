"""One set of limits for every door a value comes in by: the command line, a settings file, the Python
API and the page all call these checks, before any work starts. Each check takes the name the caller
shows its user (a flag, an argument, a control) and raises BadInput with one line.

The products that size memory are checked here too: a grid of n digits at a zoom, a GIF's frames."""

from __future__ import annotations

import math
from typing import Any

from ddream.errors import BadInput

MAX_DIGITS = 100_000  # digits one draw makes
MAX_STEPS = 1000  # ODE steps of the teacher
MAX_GUIDANCE = 10.0  # beyond it a guided teacher draws saturated (all-black or all-white) digits
MAX_SEED = 2**63 - 1
MAX_SCALE = 16
MAX_PICTURE_PIXELS = 64_000_000  # one PNG grid or GIF frame (64 MB as uint8)
MAX_GIF_PIXELS = 400_000_000  # all the frames of one GIF together
GIF_SIDE = 65_535  # the GIF format's own limit on a frame's width and height


def whole(value: Any, name: str, lo: int, hi: int) -> int:
    """A whole number in [lo, hi] (an int, or a float or string that reads as one), or one line."""
    what = "a whole number"
    if isinstance(value, int) and not isinstance(value, bool):  # exact, beyond a float's precision
        if lo <= value <= hi:
            return value
        raise BadInput(f"{name} {value}: give {what} from {lo} to {hi}")
    x = _read(value, name, what, lo, hi)
    if x != int(x):
        raise BadInput(f"{name} {value}: give {what} from {lo} to {hi}")
    return int(x)


def number(value: Any, name: str, lo: float, hi: float) -> float:
    """A finite number in [lo, hi], or one line."""
    return _read(value, name, "a number", lo, hi)


def _read(value: Any, name: str, what: str, lo: float, hi: float) -> float:
    if isinstance(value, bool):
        raise BadInput(f"{name}: give {what} from {lo} to {hi}, not {value}")
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise BadInput(f"{name}: give {what} from {lo} to {hi}") from None
    if not math.isfinite(x) or not lo <= x <= hi:
        raise BadInput(f"{name} {value}: give {what} from {lo} to {hi}")
    return x


def grid_pixels(n: int, columns: int, scale: int, labels: bool = True) -> int:
    """Pixels of render.grid's picture of n digits (its 2-pixel gaps and label column included)."""
    from ddream.render import LABEL_WIDTH

    rows = -(-n // columns)
    width = columns * 30 + 2 + (LABEL_WIDTH if labels else 0)
    return (rows * 30 + 2) * width * scale * scale


def check_picture(n: int, columns: int, scale: int, frames: int = 1, name: str = "--n") -> None:
    """A grid (or each GIF frame of `frames`) that fits in memory and, for a GIF, in the format."""
    pixels = grid_pixels(n, columns, scale)
    rows = -(-n // columns)
    if pixels > MAX_PICTURE_PIXELS:
        raise BadInput(
            f"{name} {n} at scale {scale} makes a {pixels / 1e6:.0f}-megapixel picture (at most "
            f"{MAX_PICTURE_PIXELS / 1e6:.0f}); draw fewer digits or a smaller --scale, or use --npz"
        )
    if frames > 1:
        from ddream.render import LABEL_WIDTH

        side = max(rows * 30 + 2, columns * 30 + 2 + LABEL_WIDTH) * scale
        if side > GIF_SIDE or pixels * frames > MAX_GIF_PIXELS:
            raise BadInput(
                f"{name} {n} at scale {scale} in {frames} frames is too large for a GIF (frames "
                f"of at most {GIF_SIDE} pixels a side, {MAX_GIF_PIXELS / 1e6:.0f} megapixels in "
                "all); draw fewer digits or a smaller --scale"
            )
