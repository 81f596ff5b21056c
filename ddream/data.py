"""Where digits come from: MNIST IDX files as in-memory uint8 tensors, batched augmentation, user images.

Images are 28x28 uint8 on disk and in memory; the models see them padded to 32x32 and scaled to
[-1, 1]. Padding (not resizing) keeps the round trip exact: `unpad(pad(x)) == x`.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ddream.errors import BadInput

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
PAD = 2  # 28 + 2*2 = 32


@dataclass(frozen=True)
class Split:
    """One split of a dataset, whole in memory."""

    images: torch.Tensor  # uint8, (N, 28, 28)
    labels: torch.Tensor  # int64, (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int) -> Split:
        return self if n <= 0 or n >= len(self) else Split(self.images[:n], self.labels[:n])

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.images.numpy().tobytes())
        h.update(self.labels.numpy().tobytes())
        return h.hexdigest()[:16]


# ---- IDX files ---------------------------------------------------------------------------------
def _read_idx(path: Path, kind: str) -> torch.Tensor:
    """An IDX file (plain or .gz) checked against its own header; kind is 'images' or 'labels'."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise BadInput(f"{path} is not a readable gzip file ({e})") from None
    want_magic, dims = (0x0803, 3) if kind == "images" else (0x0801, 1)
    if len(raw) < 4 + 4 * dims:
        raise BadInput(f"{path} is too short to be an IDX {kind} file ({len(raw)} bytes)")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != want_magic:
        raise BadInput(
            f"{path} has magic number {magic:#010x}, expected {want_magic:#010x} for IDX {kind}"
        )
    shape = struct.unpack(f">{dims}I", raw[4 : 4 + 4 * dims])
    if kind == "images" and shape[1:] != (28, 28):
        raise BadInput(f"{path} holds {shape[1]}x{shape[2]} images; ddream needs 28x28")
    expected = 4 + 4 * dims + math.prod(shape)
    if len(raw) != expected:
        raise BadInput(
            f"{path} is truncated or padded: {len(raw)} bytes, its header says {expected}"
        )
    arr = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
    return torch.from_numpy(arr.copy())


def _find_raw_folder(data_dir: Path) -> Path | None:
    for cand in (data_dir / "MNIST" / "raw", data_dir / "raw", data_dir):
        if any(
            (cand / name).exists() or (cand / f"{name}.gz").exists()
            for name in SPLIT_FILES["train"]
        ):
            return cand
    return None


def _pick(folder: Path, name: str) -> Path:
    for cand in (folder / name, folder / f"{name}.gz"):
        if cand.exists():
            return cand
    raise BadInput(
        f"{folder / name} is missing (MNIST needs {', '.join(sum(SPLIT_FILES.values(), ()))})"
    )


def load_split(data_dir: Path, split: str) -> Split:
    """One split read from a torchvision-layout MNIST folder (DIR/MNIST/raw/*-ubyte)."""
    folder = _find_raw_folder(data_dir)
    if folder is None:
        raise BadInput(
            f"no MNIST files in {data_dir}: expected {data_dir}/MNIST/raw/"
            f"{SPLIT_FILES['train'][0]} and the other IDX files (torchvision's layout)"
        )
    img_name, lbl_name = SPLIT_FILES[split]
    images = _read_idx(_pick(folder, img_name), "images")
    labels = _read_idx(_pick(folder, lbl_name), "labels").long()
    if len(images) != len(labels):
        raise BadInput(f"{folder}: {len(images)} {split} images but {len(labels)} labels")
    if len(labels) and int(labels.max()) > 9:
        raise BadInput(f"{folder}: {split} labels go up to {int(labels.max())}; MNIST has 0-9")
    return Split(images, labels)


def resolve_data_dir(data_dir: Path | None, state_root: Path) -> Path:
    """The folder to read MNIST from: --data-dir, or the state dir's cache (downloaded if online)."""
    if data_dir is not None:
        if not data_dir.is_dir():
            raise BadInput(f"--data-dir {data_dir} is not a folder")
        return data_dir
    cache = state_root / "data"
    if _find_raw_folder(cache) is None:
        try:
            from torchvision.datasets import MNIST

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for train in (True, False):
                    MNIST(root=str(cache), train=train, download=True)
        except Exception:
            raise BadInput(
                f"MNIST is not in {cache} and could not be downloaded (offline?); point --data-dir "
                "at a folder holding MNIST/raw/train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte"
            ) from None
    return cache


# ---- model-side tensors ---------------------------------------------------------------------------
def to_model(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 28, 28) -> float (B, 1, 32, 32) in [-1, 1], padded with background."""
    x = images.float().unsqueeze(1) / 127.5 - 1.0
    return F.pad(x, (PAD, PAD, PAD, PAD), value=-1.0)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Model output (B, 1, 32, 32) in [-1, 1] -> float (B, 28, 28) in [0, 1], the padding cropped."""
    return ((x[:, 0, PAD:-PAD, PAD:-PAD].float() + 1.0) / 2.0).clamp(0.0, 1.0)


def to_uint8(x01: torch.Tensor) -> torch.Tensor:
    return (x01 * 255.0).round().clamp(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class Augment:
    """Random affine transforms drawn per image, applied to a whole batch at once."""

    rotate: float  # degrees +-
    translate: float  # fraction of the 28-pixel digit +-
    scale: tuple[float, float]
    shear: float  # degrees +-

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """x: (B, 1, 32, 32) in [-1, 1]; gen: a CPU generator, so draws match on every device."""
        b = x.shape[0]
        u = torch.rand(b, 5, generator=gen) * 2 - 1  # uniform in [-1, 1]
        rot = torch.deg2rad(u[:, 0] * self.rotate)
        shear = torch.deg2rad(u[:, 1] * self.shear)
        lo, hi = math.log(self.scale[0]), math.log(self.scale[1])
        scale = torch.exp(lo + (u[:, 2] + 1) / 2 * (hi - lo))
        shift = u[:, 3:5] * self.translate * 28 / 32 * 2  # in affine_grid's [-1, 1] units
        cos, sin = torch.cos(rot), torch.sin(rot)
        # theta maps output coordinates to input ones: rotation * shear, divided by the scale.
        a = torch.stack([cos, -sin + cos * torch.tan(shear)], 1) / scale[:, None]
        c = torch.stack([sin, cos + sin * torch.tan(shear)], 1) / scale[:, None]
        theta = torch.stack([torch.cat([a, shift[:, :1]], 1), torch.cat([c, shift[:, 1:]], 1)], 1)
        theta = theta.to(x.device, x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        # Sample x+1 so that the zero padding of grid_sample is the background (-1).
        return (
            F.grid_sample(x + 1.0, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            - 1.0
        )


# ---- user images ----------------------------------------------------------------------------------
MAX_PIXELS = 40_000_000  # larger images are refused before they are decoded


def read_user_image(path: Path, invert: bool | None = None) -> torch.Tensor:
    """Any PNG/JPEG/BMP/GIF as an MNIST-framed digit: float (28, 28) in [0, 1], white on black.

    Grayscale; dark-on-light detected from the border and inverted (unless `invert` says);
    the digit's bounding box scaled into 20x20 and centred by its centre of mass, as MNIST was made.
    """
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
            with Image.open(path) as im:
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
    except BadInput:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadInput(f"{path} is not an image ddream can read (PNG, JPEG, BMP, GIF)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BadInput(f"{path} cannot be decoded ({e}); is it truncated?") from None
    return frame_digit(gray, invert=invert, name=str(path))


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


def frame_digit(gray: np.ndarray, invert: bool | None = None, name: str = "image") -> torch.Tensor:
    """MNIST framing of a grayscale array: 20x20 box, centre of mass at the middle of 28x28."""
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
    return torch.from_numpy(out)
