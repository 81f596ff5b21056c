"""Speed benchmark: ddream's data path against a DataLoader pipeline, sampling speed by step count, and
the quick pipeline's wall time.

1. The default autoencoder's training step fed two ways, same model, same batch size, same augmentation
   ranges: ddream's (the split one uint8 tensor on the device, batches by index, one affine_grid /
   grid_sample call per batch) and torchvision's (`DataLoader` over a Dataset with per-sample
   `transforms.v2`: Pad, RandomAffine, ToDtype, Normalize). Images/s of the data alone and of the
   training step, and their ratio.
2. Sampling digits/s (decoding included, best of 5) at 1, 2, 4, 12 Euler steps and at each model's own
   default, for the state dirs given (`--state NAME=DIR`, e.g. the quality benchmark's).
3. `ddream all --profile quick` from an empty state dir: wall time and peak RSS.

    python benchmarks/speed.py --data-dir DIR \
        --state default=/tmp/ddream-bench-quality/default \
        --state digitdreamer=/tmp/ddream-bench-quality/digitdreamer
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch
from common import digits_per_s, timed_ddream

from ddream.data import Augment, load_split, to_model
from ddream.models.autoencoder import AutoEncoder
from ddream.models.discriminator import PatchDiscriminator
from ddream.presets import PRESETS
from ddream.runtime import autocast, seeded
from ddream.stages.train_ae import ae_losses

SAMPLERS = (
    (None, None),
    (1, "euler"),
    (2, "euler"),
    (4, "euler"),
    (12, "euler"),
    (2, "heun"),
    (6, "heun"),
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class TorchvisionDigits(torch.utils.data.Dataset):
    """The per-sample pipeline most tutorials write: one PIL-free tensor transform chain per image."""

    def __init__(self, images: torch.Tensor, cfg) -> None:
        from torchvision.transforms import v2

        self.images = images
        self.tf = v2.Compose(
            [
                v2.Pad(2),
                v2.RandomAffine(
                    degrees=cfg.rotate, translate=cfg.translate, scale=cfg.scale, shear=cfg.shear
                ),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize([0.5], [0.5]),
            ]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.tf(self.images[i][None])


def ours(images: torch.Tensor, cfg, batch: int, device: torch.device, seed: int = 0):
    """Batches as ddream's train-ae makes them."""
    images = images.to(device)
    aug = Augment(cfg.rotate, cfg.translate, cfg.scale, cfg.shear)
    step = 0
    while True:
        perm = torch.randperm(len(images), generator=seeded(seed, "epoch", step))
        for i in range(0, len(perm) - batch + 1, batch):
            x = to_model(images[perm[i : i + batch].to(device)])
            yield aug(x, seeded(seed, "augment", step))
            step += 1


def theirs(images: torch.Tensor, cfg, batch: int, device: torch.device, workers: int):
    loader = torch.utils.data.DataLoader(
        TorchvisionDigits(images, cfg),
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )
    while True:
        for x in loader:
            yield x.to(device, non_blocking=True)


def throughput(batches, steps: int, device: torch.device, train=None, warmup: int = 5) -> float:
    """Images/s over `steps` batches (after a warm-up), with or without a training step."""
    n = 0
    for i, x in enumerate(batches):
        if i == warmup:
            sync(device)
            t0, n = time.perf_counter(), 0
        if train is not None:
            train(x)
        n += x.shape[0]
        if i == warmup + steps:
            break
    sync(device)
    return n / (time.perf_counter() - t0)


def make_train_step(device: torch.device):
    cfg = PRESETS["default"]
    ae = AutoEncoder(cfg.ae).to(device)
    disc = PatchDiscriminator(cfg.ae.disc_width).to(device)
    opt = torch.optim.AdamW(ae.parameters(), lr=cfg.ae_train.lr)

    def train(x: torch.Tensor) -> None:
        with autocast(device):
            total, *_ = ae_losses(ae, disc, x, gan_weight=0.0, use_gan=False)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()

    return train


def data_path(data_dir: Path, device: torch.device, steps: int, workers: int) -> list[tuple]:
    cfg = PRESETS["default"].ae_train
    images = load_split(data_dir, "train").images
    batch = cfg.batch_size
    rows = []
    for label, make in (
        (
            "ddream: tensor on the device, one grid_sample per batch",
            lambda: ours(images, cfg, batch, device),
        ),
        (
            f"DataLoader + per-sample transforms.v2 ({workers} workers)",
            lambda: theirs(images, cfg, batch, device, workers),
        ),
    ):
        data_only = throughput(make(), steps * 4, device)
        step = throughput(make(), steps, device, make_train_step(device))
        rows.append((label, data_only, step))
    return rows


@torch.inference_mode()
def sampling(state: Path, device: torch.device, n: int) -> list[tuple]:
    from ddream.sampler import Sampler, SampleRequest
    from ddream.stages.evaluate import balanced_labels
    from ddream.state import StateDir

    labels = balanced_labels(n)
    rows = []
    teacher = Sampler.from_state(StateDir(state), device, "teacher")
    for steps, solver in SAMPLERS:
        req = teacher.resolve(SampleRequest(n=n, steps=steps, solver=solver))
        name = f"teacher {req.solver} {req.steps}" + (" (preset)" if steps is None else "")
        rows.append((name, req.cfg, digits_per_s(teacher, labels, req)))
    if StateDir(state).view("distill").status == "done":
        student = Sampler.from_state(StateDir(state), device, "student")
        for steps in (1, 2):
            req = student.resolve(SampleRequest(n=n, steps=steps))
            name = f"student {steps} ({student.decoder_name} decoder)"
            rows.append((name, req.cfg, digits_per_s(student, labels, req)))
    return rows


def quick_pipeline(data_dir: Path, device: str) -> tuple[float, float]:
    state = Path(tempfile.mkdtemp(prefix="ddream-quick-"))
    try:
        return timed_ddream(
            "all",
            "--profile",
            "quick",
            "--data-dir",
            str(data_dir),
            "--state-dir",
            str(state),
            "--device",
            device,
            "--quiet",
        )
    finally:
        shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=40, help="training steps timed per data path")
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument("--state", action="append", default=[], help="NAME=DIR of a trained state dir")
    ap.add_argument("--n", type=int, default=2000, help="digits per sampling run")
    ap.add_argument("--no-quick", action="store_true", help="skip the quick pipeline's run")
    ap.add_argument("--no-data", action="store_true", help="skip the data path comparison")
    args = ap.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{os.cpu_count()} CPUs"
    print(
        f"\nMachine: {platform.machine()}, {name}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}\n"
    )

    if not args.no_data:
        rows = data_path(args.data_dir, device, args.steps, args.workers)
        print(
            "| data path (default AE, batch 128, augmented) | data alone (img/s) | training step (img/s) |"
        )
        print("| --- | --- | --- |")
        for label, data_only, step in rows:
            print(f"| {label} | {data_only:.0f} | {step:.0f} |")
        (_, d0, s0), (_, d1, s1) = rows
        print(f"\nddream / DataLoader: data alone {d0 / d1:.1f}x, training step {s0 / s1:.2f}x\n")

    if args.state:
        print(f"| state | sampler | cfg | digits/s ({args.n:,} digits, decoded) |")
        print("| --- | --- | --- | --- |")
        for spec in args.state:
            label, _, path = spec.partition("=")
            for sampler, cfg, speed in sampling(Path(path), device, args.n):
                print(f"| {label} | {sampler} | {cfg} | {speed:.0f} |")

    if args.no_quick:
        return
    seconds, rss = quick_pipeline(args.data_dir, args.device)
    print(f"\n`ddream all --profile quick`: {seconds:.1f} s, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
