"""MNIST IDX files, padding, batched augmentation."""

import struct

import numpy as np
import pytest
import torch
from conftest import synthetic_digits, write_idx

from ddream.data import (
    Augment,
    load_split,
    resolve_data_dir,
    to_model,
    to_uint8,
    to_unit,
)
from ddream.errors import BadInput


def test_splits_load_as_uint8_tensors(mnist_dir):
    train = load_split(mnist_dir, "train")
    assert train.images.dtype == torch.uint8 and train.images.shape == (256, 28, 28)
    assert train.labels.dtype == torch.int64 and set(train.labels.tolist()) == set(range(10))


def test_gzipped_files_are_read_too(tmp_path):
    import gzip

    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw, "train", *synthetic_digits(20, 0))
    for f in raw.iterdir():
        (raw / (f.name + ".gz")).write_bytes(gzip.compress(f.read_bytes()))
        f.unlink()
    assert len(load_split(tmp_path, "train")) == 20


def test_missing_files_name_what_is_expected(tmp_path):
    with pytest.raises(BadInput, match="train-images-idx3-ubyte"):
        load_split(tmp_path, "train")


def test_offline_without_data_points_at_data_dir(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*a, **k):
        raise RuntimeError("no network")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(BadInput, match="--data-dir"):
        resolve_data_dir(None, tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "magic", "labels"])
def test_damaged_idx_files_are_refused_by_name(tmp_path, damage):
    raw = tmp_path / "MNIST" / "raw"
    images, labels = synthetic_digits(30, 0)
    write_idx(raw, "train", images, labels)
    img = raw / "train-images-idx3-ubyte"
    if damage == "truncate":
        img.write_bytes(img.read_bytes()[:-100])
    elif damage == "magic":
        img.write_bytes(struct.pack(">I", 0x0801) + img.read_bytes()[4:])
    else:
        write_idx(raw, "train", images, labels[:-3])
    with pytest.raises(BadInput, match="train-"):
        load_split(tmp_path, "train")


def test_padding_round_trip_is_exact():
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    x = to_model(images)
    assert x.shape == (5, 1, 32, 32)
    assert float(x[:, :, :2].max()) == -1.0  # the padding is background
    assert torch.equal(to_uint8(to_unit(x)), images)


def test_augmentation_is_one_batched_call_deterministic_and_identity_at_zero():
    x = to_model(torch.from_numpy(synthetic_digits(8, 0)[0]))
    aug = Augment(rotate=30, translate=(0.1, 0.2), scale=(0.8, 1.2), shear=10)
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    c = aug(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    still = Augment(rotate=0, translate=(0, 0), scale=(1, 1), shear=0)(x, torch.Generator())
    assert torch.allclose(still, x, atol=1e-5)


def _write_dataset(root, folder, names, images, labels, label_table=False, transpose=False):
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    imgs = images.transpose(0, 2, 1) if transpose else images
    (raw / names[0]).write_bytes(struct.pack(">IIII", 0x0803, len(imgs), 28, 28) + imgs.tobytes())
    if label_table:  # QMNIST: int32 N x 8, class in column 0
        table = np.zeros((len(labels), 8), dtype=">i4")
        table[:, 0] = labels
        (raw / names[1]).write_bytes(struct.pack(">III", 0x0C02, len(labels), 8) + table.tobytes())
    else:
        (raw / names[1]).write_bytes(struct.pack(">II", 0x0801, len(labels)) + labels.tobytes())


@pytest.mark.parametrize("name", ["fashion", "kmnist", "emnist-digits", "qmnist"])
def test_other_mnist_like_datasets_read_as_mnist_does(tmp_path, name):
    from ddream.data import DATASETS

    spec = DATASETS[name]
    images, labels = synthetic_digits(40, 0)
    for split in ("train", "test"):
        _write_dataset(
            tmp_path,
            spec.folder,
            spec.files[split],
            images,
            labels,
            label_table=name == "qmnist",
            transpose=spec.transpose,
        )
    train = load_split(tmp_path, "train", name)
    assert torch.equal(train.images, torch.from_numpy(images))  # EMNIST transposed back
    assert torch.equal(train.labels, torch.from_numpy(labels.astype(np.int64)))
    other = "mnist" if name != "fashion" else "kmnist"
    with pytest.raises(BadInput, match=f"no {other} files"):  # one dataset is never read as another
        load_split(tmp_path, "train", other)


def test_unknown_dataset_is_refused():
    from ddream.data import get_dataset

    with pytest.raises(BadInput, match="fashion"):
        get_dataset("cifar")


def test_model_to_uint8_is_to_uint8_of_to_unit():
    import torch

    from ddream.data import model_to_uint8, to_uint8, to_unit

    x = torch.cat(
        [torch.linspace(-1.5, 1.5, 32 * 32 * 50).view(50, 1, 32, 32), torch.randn(50, 1, 32, 32)]
    )
    assert torch.equal(model_to_uint8(x), to_uint8(to_unit(x)))
