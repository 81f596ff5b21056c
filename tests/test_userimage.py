"""Reading a person's digit images: any mode and size framed like MNIST, bad files refused in one line."""

import struct

import numpy as np
import pytest
import torch
from PIL import Image

from ddream.errors import BadInput
from ddream.userimage import frame_digit, read_user_image


def _digit_array(h: int, w: int) -> np.ndarray:
    """A white '1'-like stroke on black, placed off-centre."""
    arr = np.zeros((h, w), dtype=np.uint8)
    arr[h // 5 : 4 * h // 5, w // 6 : w // 6 + max(2, w // 10)] = 255
    return arr


def _centre_of_mass(img: torch.Tensor) -> tuple[float, float]:
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    total = img.sum()
    return float((ys * img).sum() / total), float((xs * img).sum() / total)


@pytest.mark.parametrize(
    "mode,suffix,size",
    [
        ("L", ".png", (31, 57)),
        ("RGB", ".jpg", (200, 120)),
        ("RGBA", ".png", (64, 64)),
        ("P", ".gif", (45, 45)),
        ("I;16", ".png", (40, 33)),
        ("1", ".bmp", (50, 70)),
    ],
)
def test_user_images_of_any_mode_and_size_are_framed_like_mnist(tmp_path, mode, suffix, size):
    arr = _digit_array(*size)
    if mode == "I;16":
        im = Image.fromarray(arr.astype(np.uint16) * 257)
    elif mode == "RGBA":  # a black stroke on transparent: composited on white, then inverted
        rgba = np.zeros((*size, 4), dtype=np.uint8)
        rgba[..., 3] = arr
        im = Image.fromarray(rgba, "RGBA")
    else:
        im = Image.fromarray(arr).convert(mode)
    path = tmp_path / f"digit {mode.replace(';', '')} é{suffix}"  # spaces and non-ASCII too
    im.save(path)
    digit = read_user_image(path)
    assert digit.shape == (28, 28) and digit.dtype == torch.float32
    assert float(digit.max()) > 0.9 and float(digit[0].max()) < 0.05  # white on black, border clear
    cy, cx = _centre_of_mass(digit)
    assert abs(cy - 13.5) < 1.5 and abs(cx - 13.5) < 1.5
    rows = torch.nonzero(digit.max(1).values > 0.2)
    assert int(rows.max() - rows.min()) + 1 <= 21  # the long side fits the 20-pixel box


def test_dark_on_light_is_detected_and_inverted():
    arr = _digit_array(40, 40).astype(np.float32) / 255
    assert torch.allclose(frame_digit(1 - arr), frame_digit(arr), atol=1e-5)
    assert torch.allclose(frame_digit(1 - arr, invert=True), frame_digit(arr), atol=1e-5)
    with pytest.raises(BadInput, match="no digit"):  # forced the wrong way: only background is left
        frame_digit(arr, invert=True)


@pytest.mark.parametrize(
    "content,match",
    [
        (None, "no such file"),
        (b"", "empty"),
        (b"not an image at all", "not an image"),
    ],
)
def test_bad_user_files_are_refused(tmp_path, content, match):
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BadInput, match=match):
        read_user_image(path)


def test_folders_tiny_blank_and_truncated_images_are_refused(tmp_path):
    with pytest.raises(BadInput, match="folder"):
        read_user_image(tmp_path)
    Image.new("L", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(BadInput, match="too small"):
        read_user_image(tmp_path / "dot.png")
    Image.new("L", (30, 30)).save(tmp_path / "blank.png")
    with pytest.raises(BadInput, match="no digit"):
        read_user_image(tmp_path / "blank.png")
    Image.fromarray(_digit_array(300, 300)).save(tmp_path / "big.jpg", quality=95)
    data = (tmp_path / "big.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(BadInput):
        read_user_image(tmp_path / "cut.jpg")


def test_decompression_bombs_are_refused_before_decoding(tmp_path):
    # A PNG header claiming 100000 x 100000 pixels: refused from the header alone.
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 10))
        + chunk(b"IEND", b"")
    )
    (tmp_path / "bomb.png").write_bytes(png)
    with pytest.raises(BadInput, match="refuses|not an image"):
        read_user_image(tmp_path / "bomb.png")


def test_animated_gifs_use_their_first_frame(tmp_path):
    frames = [Image.fromarray(_digit_array(40, 40)), Image.new("L", (40, 40))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert float(read_user_image(tmp_path / "anim.gif").max()) > 0.9
