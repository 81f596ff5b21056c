"""A person's digit image (a file, or a drawing as an array) framed the way MNIST was made: grayscale,
white on black, the bounding box scaled into 20x20 and centred by its centre of mass in 28x28.

`ddream reconstruct` and the Draw tab of `ddream serve` share this path; both refuse images over
MAX_PIXELS before decoding them, and blank ones, with one line.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ddream.errors import BadInput

MAX_PIXELS = 40_000_000  # larger images are refused before they are decoded
FORMATS = ("PNG", "JPEG", "BMP", "GIF")  # the formats ddream documents; Pillow tries no others


def read_user_image(path: Path, invert: bool | None = None) -> torch.Tensor:
    """Any PNG/JPEG/BMP/GIF as an MNIST-framed digit: float (28, 28) in [0, 1], white on black.

    Grayscale; dark-on-light detected from the border and inverted (unless `invert` says);
    the digit's bounding box scaled into 20x20 and centred by its centre of mass, as MNIST was made.
    """
    return framing(read_gray(path), invert=invert, name=str(path))[0]


def read_gray(path: Path) -> np.ndarray:
    """A PNG/JPEG/BMP/GIF file (its first frame) as grayscale float32 (H, W) in [0, 1], checked:
    missing, empty, oversized, tiny and undecodable files are one line each."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: no such file")
    if path.is_dir():
        raise BadInput(f"{path} is a folder, not an image")
    if path.stat().st_size == 0:
        raise BadInput(f"{path} is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise BadInput(
                        f"{path} is {w}x{h} pixels; ddream refuses images over "
                        f"{MAX_PIXELS:,} pixels"
                    )
                if w < 4 or h < 4:
                    raise BadInput(f"{path} is {w}x{h} pixels; too small to hold a digit")
                frame = next(iter(ImageSequence.Iterator(im)))  # first frame of an animation
                gray = _grayscale(frame)
        if not np.isfinite(gray).all():
            raise BadInput(f"{path} holds pixels that are not numbers (NaN or infinite)")
    except BadInput:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadInput(f"{path} is not an image ddream can read (PNG, JPEG, BMP, GIF)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BadInput(f"{path} cannot be decoded ({e}); is it truncated?") from None
    return gray


def read_user_array(
    arr: np.ndarray, invert: bool | None = None, name: str = "the drawing"
) -> torch.Tensor:
    """A drawing or decoded image as an array ((H, W), (H, W, 3) or (H, W, 4), alpha composited onto
    white) -> the same MNIST framing as `read_user_image`."""
    return framing(array_gray(arr, name), invert=invert, name=name)[0]


def array_gray(arr: np.ndarray, name: str = "the drawing") -> np.ndarray:
    """An image array, checked, as grayscale float32 (H, W) in [0, 1] (alpha composited onto white)."""
    from PIL import Image

    arr = np.asarray(arr)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise BadInput(f"{name} is not an image (an array of shape {tuple(arr.shape)})")
    h, w = arr.shape[:2]
    if h * w > MAX_PIXELS:
        raise BadInput(
            f"{name} is {w}x{h} pixels; ddream refuses images over {MAX_PIXELS:,} pixels"
        )
    if h < 4 or w < 4:
        raise BadInput(f"{name} is {w}x{h} pixels; too small to hold a digit")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.dtype != np.uint8:
        arr = np.clip(np.nan_to_num(arr.astype(np.float64)), 0, 255).astype(np.uint8)
    return _grayscale(Image.fromarray(arr))


def _grayscale(im) -> np.ndarray:
    """float32 (H, W) in [0, 1]; alpha composited onto white, 16-bit and float modes rescaled."""
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return np.clip(arr / top, 0, 1).astype(np.float32)
    if im.mode in ("P", "PA", "LA", "RGBA") or "transparency" in im.info:
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


@dataclass(frozen=True)
class Frame:
    """Where a framed digit came from: its crop of the source (origin y0, x0; size h, w), scaled
    by k into (nh, nw) pixels placed at (top, left) of the 28x28 frame; `shape` is the source's."""

    shape: tuple[int, int]
    y0: int
    x0: int
    h: int
    w: int
    nh: int
    nw: int
    top: int
    left: int

    def apply(self, mask: np.ndarray) -> torch.Tensor:
        """A mask of the source's pixels (H, W) -> the framed digit's (28, 28) bool: each framed
        pixel takes the source pixel its centre falls on (nearest, clamped at the edges)."""
        centre = np.arange(28) + 0.5
        ys = self.y0 + (centre - self.top) * self.h / self.nh - 0.5
        xs = self.x0 + (centre - self.left) * self.w / self.nw - 0.5
        rows = np.clip(np.round(ys), 0, self.shape[0] - 1).astype(int)
        cols = np.clip(np.round(xs), 0, self.shape[1] - 1).astype(int)
        return torch.from_numpy(np.asarray(mask, dtype=bool)[np.ix_(rows, cols)].copy())


def frame_digit(gray: np.ndarray, invert: bool | None = None, name: str = "image") -> torch.Tensor:
    """MNIST framing of a grayscale array: 20x20 box, centre of mass at the middle of 28x28."""
    return framing(gray, invert, name)[0]


def framing(
    gray: np.ndarray, invert: bool | None = None, name: str = "image"
) -> tuple[torch.Tensor, Frame]:
    """`frame_digit`, and the Frame that maps the source's pixels (a mask of them) the same way."""
    from PIL import Image

    if invert is None:
        border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
        invert = float(np.median(border)) > 0.5
    ink = 1.0 - gray if invert else gray
    ink = ink - float(np.median(np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]])))
    ink = np.clip(ink, 0, None)
    peak = float(ink.max())
    if peak < 0.1:
        raise BadInput(f"{name} holds no digit (the image is blank)")
    ink = ink / peak
    rows, cols = np.nonzero(ink > 0.2)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = ink.shape
    k = 20.0 / max(h, w)
    nh, nw = max(1, round(h * k)), max(1, round(w * k))
    small = np.asarray(
        Image.fromarray(ink.astype(np.float32), mode="F").resize(
            (nw, nh), Image.Resampling.LANCZOS if max(h, w) > 20 else Image.Resampling.BILINEAR
        )
    )
    small = np.clip(small, 0, 1)
    total = small.sum()
    ys, xs = np.mgrid[0:nh, 0:nw]
    cy, cx = (ys * small).sum() / total, (xs * small).sum() / total
    top = int(np.clip(round(13.5 - cy), 0, 28 - nh))
    left = int(np.clip(round(13.5 - cx), 0, 28 - nw))
    out = np.zeros((28, 28), dtype=np.float32)
    out[top : top + nh, left : left + nw] = small
    y0, x0 = int(rows.min()), int(cols.min())
    return torch.from_numpy(out), Frame(gray.shape, y0, x0, h, w, nh, nw, top, left)
