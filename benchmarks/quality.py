"""Quality benchmark: the default preset against the digitdreamer preset, side by side, on real MNIST.

Each preset trains its own reference schedule (`ddream all`) from an empty state dir; both are then
scored by `ddream eval` with one shared feature extractor (10,000 samples, balanced), and the default
model's guidance scale and step count are swept. Prints Markdown for BENCHMARKS.md and writes a grid
and a GIF of each preset into docs/quality/.

    python benchmarks/quality.py --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("digitdreamer", "default")


def ddream(*args: str, capture: bool = False) -> str:
    res = subprocess.run([sys.executable, "-m", "ddream", *args], check=True, text=True,
                         capture_output=capture)
    return res.stdout if capture else ""


def evaluate(state: Path, data: str, n: int, *extra: str) -> dict:
    return json.loads(ddream("eval", "--state-dir", str(state), "--data-dir", data, "--n", str(n),
                             "--device", "cpu", "--json", *extra, capture=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ddream-bench-quality"))
    ap.add_argument("--keep", action="store_true", help="reuse trained state dirs")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--sweep-n", type=int, default=2_000)
    args = ap.parse_args()
    data = str(args.data_dir)
    if args.work.exists() and not args.keep:
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True, exist_ok=True)
    out_dir = ROOT / "docs" / "quality"
    out_dir.mkdir(parents=True, exist_ok=True)

    results = {}
    for preset in PRESETS:
        state = args.work / preset
        t0 = time.perf_counter()
        ddream("all", "--preset", preset, "--data-dir", data, "--state-dir", str(state), "--device", "cpu",
               "--quiet")
        total = time.perf_counter() - t0
        stages = json.loads((state / "state.json").read_text())["stages"]
        shared = args.work / PRESETS[0] / "eval" / "classifier.safetensors"
        if preset != PRESETS[0] and shared.exists():  # one extractor for both presets
            (state / "eval").mkdir(exist_ok=True)
            shutil.copy(shared, state / "eval" / "classifier.safetensors")
        results[preset] = {"eval": evaluate(state, data, args.n), "stages": stages, "total": total}
        ddream("sample", "--state-dir", str(state), "--device", "cpu", "--grid", str(out_dir / f"{preset}.png"),
               "--gif", str(out_dir / f"{preset}.gif"), "--quiet")

    sweep = []
    default_state = args.work / "default"
    for steps in (4, 12):
        for cfg in (1.0, 1.25, 1.5, 2.0):
            r = evaluate(default_state, data, args.sweep_n, "--steps", str(steps), "--cfg", str(cfg))
            sweep.append((steps, cfg, r["generation"], r["digits_per_s"]))

    print(f"\nMachine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d')}\n")
    print("| preset | PSNR (dB) | SSIM | FID | class acc. | precision | recall | train-ae | encode | "
          "train-dit | total | sampling (digits/s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for preset in PRESETS:
        e, st = results[preset]["eval"], results[preset]["stages"]
        g, r = e["generation"], e["reconstruction"]
        print(f"| {preset} ({e['steps']} {e['solver']} steps, cfg {e['cfg']}) | {r['psnr']:.2f} | {r['ssim']:.4f} | "
              f"{g['fid']:.3f} | {g['class_accuracy']:.2%} | {g['precision']:.3f} | {g['recall']:.3f} | "
              f"{st['ae']['wall_time']:.0f} s | {st['encode']['wall_time']:.0f} s | {st['dit']['wall_time']:.0f} s | "
              f"{results[preset]['total']:.0f} s | {e['digits_per_s']:.0f} |")
    f = results["default"]["eval"]["real_floor"]
    print(f"| real-data floor (held-out digits) | | | {f['fid']:.3f} | {f['class_accuracy']:.2%} | "
          f"{f['precision']:.3f} | {f['recall']:.3f} | | | | | |")
    e0, e1 = results["digitdreamer"]["eval"], results["default"]["eval"]
    print(f"\nFID ratio default/digitdreamer: {e1['generation']['fid'] / e0['generation']['fid']:.3f}; "
          f"PSNR gain: {e1['reconstruction']['psnr'] - e0['reconstruction']['psnr']:+.2f} dB; "
          f"wall-time ratio: {results['default']['total'] / results['digitdreamer']['total']:.2f}")
    print(f"Extractor: {e1['extractor']}, test accuracy {e1['extractor_test_accuracy']:.2%}")
    print(f"\nDefault model, {args.sweep_n} samples per cell (Euler):\n")
    print("| steps | cfg | FID | class acc. | precision | recall | digits/s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for steps, cfg, g, speed in sweep:
        print(f"| {steps} | {cfg} | {g['fid']:.3f} | {g['class_accuracy']:.2%} | {g['precision']:.3f} | "
              f"{g['recall']:.3f} | {speed:.0f} |")


if __name__ == "__main__":
    main()
