"""Autoencoder pilots: a few epochs of `ddream train-ae` on real MNIST from two commits, side by side.

    python benchmarks/ae_pilot.py --data-dir DIR --commits 1a2b3c4 HEAD

Each commit trains in its own process from a git worktree (working-tree changes: commit first), the
runs alternating A, B, A, B so that a noisy machine hurts both alike; the GAN term starts at step 0 so
that the pilot measures the phase that holds ~80% of a reference run's steps. Prints a Markdown table
(test PSNR after the pilot, training images/s, wall time) and the B/A speed ratio. `--isa avx2` holds
torch, oneDNN and MKL to AVX2 kernels, to check that a saving does not depend on AVX-512.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import at, worktree

AVX2 = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}


def pilot(tree: Path, data_dir: Path, epochs: int, env: dict[str, str]) -> dict[str, float]:
    state = Path(tempfile.mkdtemp(prefix="ddream-pilot-"))
    args = ["train-ae", "--epochs", str(epochs), "--finetune-epochs", "0", "--gan-start", "0"]
    args += ["--data-dir", str(data_dir), "--state-dir", str(state), "--device", "cpu", "--quiet"]
    t0 = time.perf_counter()
    at(tree, "-m", "ddream", *args, env=env)
    wall = time.perf_counter() - t0
    rec = json.loads((state / "state.json").read_text())["stages"]["ae"]
    shutil.rmtree(state, ignore_errors=True)
    return {
        "wall_s": wall,
        "images_per_s": rec["metrics"]["images_per_s"],
        "test_psnr": rec["metrics"]["test_psnr"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--commits", nargs=2, default=["HEAD~1", "HEAD"], metavar=("A", "B"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--isa", choices=["native", "avx2"], default="native")
    ap.add_argument("--json", type=Path, help="also write the runs here")
    args = ap.parse_args()
    env = {**os.environ, **(AVX2 if args.isa == "avx2" else {})}
    runs: dict[str, list[dict[str, float]]] = {c: [] for c in args.commits}
    with contextlib.ExitStack() as stack:
        trees = {commit: stack.enter_context(worktree(commit)) for commit in args.commits}
        for _ in range(args.repeats):
            for commit, tree in trees.items():
                runs[commit].append(pilot(tree, args.data_dir.resolve(), args.epochs, env))
                print(f"{commit}: {runs[commit][-1]}", flush=True)
    print(f"\n{args.epochs}-epoch pilots, GAN from step 0, kernels: {args.isa}\n")
    print("| commit | test PSNR (dB) | images/s (median) | wall (s, median) |")
    print("| --- | --- | --- | --- |")
    med = {}
    for commit, rs in runs.items():
        med[commit] = statistics.median(r["images_per_s"] for r in rs)
        psnr = ", ".join(f"{r['test_psnr']:.2f}" for r in rs)
        wall = statistics.median(r["wall_s"] for r in rs)
        print(f"| {commit} | {psnr} | {med[commit]:.0f} | {wall:.0f} |")
    a, b = args.commits
    print(f"\nB/A images/s: {med[b] / med[a]:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"data_dir": str(args.data_dir),
                                         "json": str(args.json)}, "runs": runs}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
