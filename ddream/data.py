"""Where digits come from: MNIST IDX files as in-memory uint8 tensors and batched augmentation.

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

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetSpec:
    """Where torchvision keeps an MNIST-like dataset and how its IDX files differ from MNIST's."""

    name: str
    folder: str  # torchvision's class name, the folder under the root
    files: dict[str, tuple[str, str]]  # split -> (images, labels)
    transpose: bool = False  # EMNIST stores images transposed
    test_limit: int = (
        0  # QMNIST's test file holds 60,000; torchvision's test10k is the first 10,000
    )


DATASETS = {
    "mnist": DatasetSpec("mnist", "MNIST", MNIST_FILES),
    "fashion": DatasetSpec("fashion", "FashionMNIST", MNIST_FILES),
    "kmnist": DatasetSpec("kmnist", "KMNIST", MNIST_FILES),
    "emnist-digits": DatasetSpec(
        "emnist-digits",
        "EMNIST",
        {
            s: (f"emnist-digits-{s}-images-idx3-ubyte", f"emnist-digits-{s}-labels-idx1-ubyte")
            for s in ("train", "test")
        },
        transpose=True,
    ),
    "qmnist": DatasetSpec(
        "qmnist",
        "QMNIST",
        {
            s: (f"qmnist-{s}-images-idx3-ubyte", f"qmnist-{s}-labels-idx2-int")
            for s in ("train", "test")
        },
        test_limit=10_000,
    ),
}


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise BadInput(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None


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
IDX_TYPES = {0x08: np.dtype(np.uint8), 0x0C: np.dtype(">i4")}


def _read_idx(path: Path, kind: str) -> torch.Tensor:
    """An IDX file (plain or .gz) checked against its own header; kind is 'images' or 'labels'.

    Images must be uint8 N x 28 x 28; labels uint8 N, or (QMNIST) an int32 N x k table whose first
    column is the class.
    """
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise BadInput(f"{path} is not a readable gzip file ({e})") from None
    if len(raw) < 8:
        raise BadInput(f"{path} is too short to be an IDX {kind} file ({len(raw)} bytes)")
    (magic,) = struct.unpack(">I", raw[:4])
    code, dims = (magic >> 8) & 0xFF, magic & 0xFF
    allowed = {(0x08, 3)} if kind == "images" else {(0x08, 1), (0x0C, 2)}
    if magic >> 16 != 0 or (code, dims) not in allowed:
        want = " or ".join(f"{(c << 8) | d:#010x}" for c, d in sorted(allowed))
        raise BadInput(f"{path} has magic number {magic:#010x}, expected {want} for IDX {kind}")
    if len(raw) < 4 + 4 * dims:
        raise BadInput(f"{path} is too short to be an IDX {kind} file ({len(raw)} bytes)")
    shape = struct.unpack(f">{dims}I", raw[4 : 4 + 4 * dims])
    if kind == "images" and shape[1:] != (28, 28):
        raise BadInput(f"{path} holds {shape[1]}x{shape[2]} images; ddream needs 28x28")
    dtype = IDX_TYPES[code]
    expected = 4 + 4 * dims + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise BadInput(
            f"{path} is truncated or padded: {len(raw)} bytes, its header says {expected}"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * dims).reshape(shape)
    if dims == 2:
        arr = arr[:, 0]
    return torch.from_numpy(arr.astype(np.uint8 if kind == "images" else np.int64))


def _find_raw_folder(data_dir: Path, spec: DatasetSpec) -> Path | None:
    for cand in (data_dir / spec.folder / "raw", data_dir / "raw", data_dir):
        if any(
            (cand / name).exists() or (cand / f"{name}.gz").exists() for name in spec.files["train"]
        ):
            return cand
    return None


def _expected(data_dir: Path, spec: DatasetSpec) -> str:
    names = [n for pair in spec.files.values() for n in pair]
    return f"{data_dir}/{spec.folder}/raw/ holding {', '.join(names)} (torchvision's layout)"


def _pick(folder: Path, name: str, spec: DatasetSpec) -> Path:
    for cand in (folder / name, folder / f"{name}.gz"):
        if cand.exists():
            return cand
    names = [n for pair in spec.files.values() for n in pair]
    raise BadInput(f"{folder / name} is missing ({spec.name} needs {', '.join(names)})")


def load_split(data_dir: Path, split: str, dataset: str = "mnist") -> Split:
    """One split read from a torchvision-layout folder (DIR/MNIST/raw/*-ubyte and the like)."""
    spec = get_dataset(dataset)
    folder = _find_raw_folder(data_dir, spec)
    if folder is None:
        raise BadInput(f"no {spec.name} files in {data_dir}: expected {_expected(data_dir, spec)}")
    img_name, lbl_name = spec.files[split]
    images = _read_idx(_pick(folder, img_name, spec), "images")
    labels = _read_idx(_pick(folder, lbl_name, spec), "labels")
    if len(images) != len(labels):
        raise BadInput(f"{folder}: {len(images)} {split} images but {len(labels)} labels")
    if len(labels) and (int(labels.max()) > 9 or int(labels.min()) < 0):
        raise BadInput(
            f"{folder}: {split} labels go outside 0-9; ddream's datasets have 10 classes"
        )
    if spec.transpose:
        images = images.transpose(1, 2).contiguous()
    split_data = Split(images, labels)
    return split_data.head(spec.test_limit) if split == "test" else split_data


def resolve_data_dir(data_dir: Path | None, state_root: Path, dataset: str = "mnist") -> Path:
    """The folder to read from: --data-dir, or the state dir's cache (downloaded by torchvision)."""
    spec = get_dataset(dataset)
    if data_dir is not None:
        if not data_dir.is_dir():
            raise BadInput(f"--data-dir {data_dir} is not a folder")
        return data_dir
    cache = state_root / "data"
    if _find_raw_folder(cache, spec) is None:
        try:
            import torchvision.datasets as tvd

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for train in (True, False):
                    if spec.name == "emnist-digits":
                        tvd.EMNIST(root=str(cache), split="digits", train=train, download=True)
                    elif spec.name == "qmnist":
                        tvd.QMNIST(
                            root=str(cache), what="train" if train else "test", download=True
                        )
                    else:
                        getattr(tvd, spec.folder)(root=str(cache), train=train, download=True)
        except Exception:
            raise BadInput(
                f"{spec.name} is not in {cache} and could not be downloaded (offline?); point "
                f"--data-dir at a folder with {_expected(Path('DIR'), spec)}"
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


def model_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """to_uint8(to_unit(x)) in one pass over memory: (x + 1) * 127.5 is the same float as
    ((x + 1) / 2) * 255 (halving is exact), and clamping commutes with the scaling."""
    crop = x[:, 0, PAD:-PAD, PAD:-PAD].float()
    return crop.add(1.0).mul_(127.5).clamp_(0.0, 255.0).round_().to(torch.uint8)


@dataclass(frozen=True)
class Augment:
    """Random affine transforms drawn per image, applied to a whole batch at once."""

    rotate: float  # degrees +-
    translate: tuple[float, float]  # fraction of the 28-pixel digit +-, (x, y)
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
        # in affine_grid's [-1, 1] units
        shift = u[:, 3:5] * torch.tensor(self.translate, dtype=u.dtype) * 28 / 32 * 2
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
