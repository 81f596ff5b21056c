"""`ddream reconstruct`: a user's digit images (or test digits) through encoder and decoder, drawn side
by side with their inputs, with the PSNR of each reconstruction against its MNIST-framed input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ddream.artifacts import load_ae, load_ae_with_dataset, load_dataset
from ddream.data import to_model, to_uint8, to_unit
from ddream.metrics import psnr
from ddream.models.autoencoder import AutoEncoder
from ddream.render import check_output, grid, write_png
from ddream.runtime import autocast
from ddream.state import StateDir
from ddream.userimage import read_user_image


def default_output(image: Path) -> Path:
    return image.with_name(image.stem + ".recon.png")


@torch.inference_mode()
def round_trip(
    ae: AutoEncoder, digits: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 28, 28) in [0, 1] -> reconstructions in [0, 1] and per-image PSNR."""
    x = to_model((digits * 255).round().to(torch.uint8)).to(device)
    with autocast(device):
        recon = to_unit(ae(x)).cpu()
    return recon, psnr(recon, digits)


def _round_trip(
    state: StateDir, digits: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    ae, _ = load_ae(state, device)
    return round_trip(ae, digits, device)


def reconstruct_files(
    state: StateDir,
    images: list[Path],
    *,
    out: Path | None,
    invert: bool | None,
    device: torch.device,
    scale: int = 4,
) -> list[dict[str, Any]]:
    """Each image framed, reconstructed and written beside its input as NAME.recon.png (or `out`)."""
    if out is not None and len(images) > 1:
        from ddream.errors import BadInput

        raise BadInput("--out names one file; give one image with it, or leave it out")
    # Read and check every input and output before anything is written.
    digits = torch.stack([read_user_image(p, invert) for p in images])
    outputs = [check_output(out or default_output(p), ".png", "--out") for p in images]
    recon, scores = _round_trip(state, digits, device)
    results = []
    for i, (src, dst) in enumerate(zip(images, outputs, strict=False)):
        pair = torch.stack([to_uint8(digits[i]), to_uint8(recon[i])])
        write_png(dst, grid(pair, ncols=2, scale=scale))
        results.append({"input": str(src), "output": str(dst), "psnr": round(float(scores[i]), 2)})
    return results


def reconstruct_test(
    state: StateDir,
    n: int,
    *,
    out: Path,
    data_dir: Path | None,
    device: torch.device,
    scale: int = 2,
) -> dict[str, Any]:
    """N test digits over their reconstructions, 10 a row pair, like DigitDreamer's figure."""
    check_output(out, ".png", "--out")
    _, _, dataset = load_ae_with_dataset(state, device)
    _, test = load_dataset(state, data_dir, dataset["name"])
    n = min(n, len(test))
    digits = test.images[:n].float() / 255.0
    recon, scores = _round_trip(state, digits, device)
    cells = []
    for start in range(0, n, 10):
        row = slice(start, min(start + 10, n))
        pad = 10 - (row.stop - row.start)
        blank = torch.zeros(pad, 28, 28, dtype=torch.uint8)
        cells += [to_uint8(digits[row]), blank, to_uint8(recon[row]), blank]
    write_png(out, grid(torch.cat(cells), ncols=10, scale=scale))
    return {"n": n, "output": str(out), "psnr": round(float(scores.mean()), 2)}
