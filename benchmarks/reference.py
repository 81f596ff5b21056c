"""Reference-schedule benchmark: `ddream all` on real MNIST from an empty state dir, then the figures.

Prints a Markdown table (stage wall times, images/s, test PSNR, DiT validation loss, sampling speed,
peak RSS) for BENCHMARKS.md and writes the README's pictures into docs/.

    python benchmarks/reference.py --data-dir DIR
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import torch
from common import ddream, digits_per_s, draw, timed_ddream

ROOT = Path(__file__).resolve().parents[1]


def sampling_speed(state: Path, n: int, repeats: int = 3) -> float:
    """Digits per second at the default settings, decoding included (best of `repeats`, after a warm-up)."""
    from ddream.sampler import Sampler, SampleRequest, class_rows
    from ddream.state import StateDir

    sampler = Sampler.from_state(StateDir(state), torch.device("cpu"))
    labels, _ = class_rows(n, tuple(range(10)))
    return digits_per_s(sampler, labels, sampler.resolve(SampleRequest(n=n)), repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--state-dir", type=Path, default=Path("/tmp/ddream-bench-reference"))
    ap.add_argument("--keep", action="store_true", help="reuse the state dir (no fresh training)")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = ap.parse_args()
    state, data = args.state_dir, str(args.data_dir)
    if state.exists() and not args.keep:
        shutil.rmtree(state)
    total, peak_rss = timed_ddream(
        "all", "--data-dir", data, "--state-dir", str(state), "--device", "cpu"
    )

    stages = json.loads((state / "state.json").read_text())["stages"]
    speed = sampling_speed(state, 10_000)
    args.docs.mkdir(exist_ok=True)
    draw(state, args.docs / "samples.png", args.docs / "samples.gif")
    ddream(
        "sample",
        "--state-dir",
        str(state),
        "--device",
        "cpu",
        "--quiet",
        "--interpolate",
        "3",
        "8",
        "--gif",
        str(args.docs / "morph.gif"),
    )
    ddream(
        "reconstruct",
        "--test",
        "30",
        "--data-dir",
        data,
        "--state-dir",
        str(state),
        "--device",
        "cpu",
        "--out",
        str(args.docs / "reconstructions.png"),
        "--scale",
        "1",
        "--quiet",
    )

    ae, enc, dit = stages["ae"], stages["encode"], stages["dit"]
    rows = [
        (
            "train-ae (20 + 2 epochs)",
            f"{ae['wall_time']:.0f} s",
            f"{ae['metrics']['images_per_s']:.0f} img/s",
            f"test PSNR {ae['metrics']['test_psnr']:.2f} dB (28×28)",
        ),
        (
            "encode (70,000 digits)",
            f"{enc['wall_time']:.1f} s",
            f"{enc['metrics']['images_per_s']:.0f} img/s",
            "",
        ),
        (
            "train-dit (10 epochs)",
            f"{dit['wall_time']:.0f} s",
            f"{dit['metrics']['images_per_s']:.0f} latents/s",
            f"val loss {dit['metrics']['val_loss']:.4f}",
        ),
        ("`ddream all`, end to end", f"{total:.0f} s", "", f"peak RSS {peak_rss:.0f} MiB"),
        (
            "sample 10,000 digits (the model's default sampler, decoded)",
            "",
            f"{speed:.0f} digits/s",
            "",
        ),
    ]
    print(
        f"\nMachine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}\n"
    )
    print("| stage | wall time | throughput | quality |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print("\nAE test PSNR by epoch: " + ", ".join(f"{h['test_psnr']:.2f}" for h in ae["history"]))
    print("DiT val loss by epoch: " + ", ".join(f"{h['val_loss']:.4f}" for h in dit["history"]))


if __name__ == "__main__":
    main()
