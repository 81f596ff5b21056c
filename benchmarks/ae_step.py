"""Where the autoencoder's training time goes, and what the levers left could buy (issue 12).

1. Forward multiply-accumulates per 32x32 image of each preset's autoencoder and discriminator.
2. Images/s of `ddream train-ae`'s own training step (`AETask.step`: augmentation, losses, both
   optimisers) for the default autoencoder, variant by variant, interleaved round by round in one
   process and reported as the median over the rounds, as a ratio to the step as it trains today:
   without and with the GAN term, batch 256, `torch.compile` (its compile time printed apart),
   the decoder alone learning in the GAN phase (the encoder's weights frozen, as DC-AE's
   decoder-only phase and `benchmarks/patches/gan-decoder-only.patch` do), and the digitdreamer
   preset's step.
3. Smaller autoencoders (other `[ae] widths` / `blocks`), GAN off: what a step costs as the
   multiply-accumulates fall.
4. Two processes of one thread each (batch 64 apiece, no gradient exchange: an upper bound for data
   parallelism on a CPU) against one process of two threads, at batch 128.

    python benchmarks/ae_step.py [--steps 30] [--rounds 3] [--no-compile]

The images are random: the cost of a step does not depend on what the digits look like.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

from ddream.data import Split
from ddream.models.autoencoder import AutoEncoder
from ddream.models.discriminator import PatchDiscriminator
from ddream.presets import PRESETS
from ddream.stages.train_ae import AETask

NO_GAN = 10**9  # a gan_start no run reaches


def forward_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass, counted over its convolutions and linear layers."""
    total = 0

    def count(module: nn.Module, _: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += out.numel() * module.in_channels // module.groups * k
        elif isinstance(module, nn.Linear):
            total += out.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return total


def random_split(n: int) -> Split:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen)
    return Split(images, torch.zeros(n, dtype=torch.long))


def make_task(
    preset: str,
    split: Split,
    *,
    compile_: bool = False,
    frozen_encoder: bool = False,
    model: dict | None = None,
    **train,
) -> AETask:
    profile = PRESETS[preset]
    torch.manual_seed(0)
    cfg = dataclasses.replace(profile.ae_train, **train)
    ae = AutoEncoder(dataclasses.replace(profile.ae, **(model or {})))
    disc = PatchDiscriminator(profile.ae.disc_width)
    task = AETask(ae, disc, cfg, split, split, torch.device("cpu"), 0)
    if compile_:
        task.ae_ddp = torch.compile(task.ae)
    if frozen_encoder:  # no graph through the encoder: its backward pass is skipped
        ae.encoder.requires_grad_(False)
    return task


def images_per_s(task: AETask, steps: int, start: int = 0) -> float:
    bs = task.batch_size
    n = len(task.train)
    t0 = time.perf_counter()
    for i in range(start, start + steps):
        task.step(0, i, torch.arange(i * bs, (i + 1) * bs) % n)
    return steps * bs / (time.perf_counter() - t0)


def worker(batch: int, steps: int) -> None:
    """One single-threaded process timing the default step with the GAN on (section 3)."""
    torch.set_num_threads(1)
    task = make_task("default", random_split(batch * 64), gan_start=0, batch_size=batch)
    images_per_s(task, 3)
    print(images_per_s(task, steps, start=3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="timed steps per variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile row")
    ap.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.steps)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}\n")  # fmt: skip
    x = torch.randn(1, 1, 32, 32)
    print("| preset | autoencoder MMAC/image | of which encoder | discriminator MMAC/image |")
    print("| --- | --- | --- | --- |")
    for name, profile in PRESETS.items():
        ae, disc = AutoEncoder(profile.ae), PatchDiscriminator(profile.ae.disc_width)
        print(f"| {name} | {forward_macs(ae, x) / 1e6:.2f} | {forward_macs(ae.encoder, x) / 1e6:.2f} "
              f"| {forward_macs(disc, x) / 1e6:.2f} |")  # fmt: skip

    split = random_split(256 * 40)
    variants = {
        "default, GAN off (its first 16 epochs)": dict(gan_start=NO_GAN),
        "default, GAN on (its last 6 epochs)": dict(gan_start=0),
        "batch 256, GAN off": dict(gan_start=NO_GAN, batch_size=256),
        "batch 256, GAN on": dict(gan_start=0, batch_size=256),
        "digitdreamer preset (GAN on, as it trains)": dict(preset="digitdreamer"),
    }
    variants["GAN on, the decoder alone learning"] = dict(gan_start=0, frozen_encoder=True)
    if not args.no_compile:
        variants["torch.compile, GAN off"] = dict(gan_start=NO_GAN, compile_=True)
    smaller = {  # section 3
        "blocks (0, 1, 1, 0, 1)": dict(blocks=(0, 1, 1, 0, 1)),
        "blocks (0, 0, 1, 1, 1)": dict(blocks=(0, 0, 1, 1, 1)),
        "blocks (0, 1, 0, 0, 1)": dict(blocks=(0, 1, 0, 0, 1)),
        "widths (8, 16, 32, 32, 32)": dict(widths=(8, 16, 32, 32, 32)),
        "widths (8, 16, 16, 32, 32)": dict(widths=(8, 16, 16, 32, 32)),
        "widths (8, 8, 16, 32, 64)": dict(widths=(8, 8, 16, 32, 64)),
    }
    for name, model in smaller.items():
        variants[f"{name}, GAN off"] = dict(gan_start=NO_GAN, model=model)
    tasks, compile_s = {}, 0.0
    for name, spec in variants.items():
        spec = dict(spec)
        t0 = time.perf_counter()
        tasks[name] = make_task(spec.pop("preset", "default"), split, **spec)
        images_per_s(tasks[name], 3)  # warm-up (and the compilation)
        if "compile" in name:
            compile_s = time.perf_counter() - t0
    rates: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(args.rounds):
        for name, task in tasks.items():
            rates[name].append(images_per_s(task, args.steps, start=3))
    base = statistics.median(rates["default, GAN on (its last 6 epochs)"])
    off = statistics.median(rates["default, GAN off (its first 16 epochs)"])
    print("\n| training step | MMAC/image | images/s (median) | rounds | ratio to the default "
          "with GAN | ratio to the default without |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in rates.items():
        macs = forward_macs(tasks[name].ae, x) / 1e6
        print(f"| {name} | {macs:.2f} | {statistics.median(r):,.0f} | "
              f"{', '.join(f'{v:,.0f}' for v in r)} | {statistics.median(r) / base:.2f}x | "
              f"{statistics.median(r) / off:.2f}x |")  # fmt: skip
    if compile_s:
        print(f"\ntorch.compile: {compile_s:.0f} s to compile and warm up")

    cmd = [sys.executable, __file__, "--worker", "64", "--steps", str(args.steps * 2)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    two = sum(float(p.communicate()[0].split()[-1]) for p in procs)
    print(f"\ntwo 1-thread processes at batch 64, GAN on: {two:,.0f} images/s together, "
          f"{two / base:.2f}x one {torch.get_num_threads()}-thread process at batch 128")  # fmt: skip


if __name__ == "__main__":
    main()
