"""onnxruntime's digits/s beside ddream's own sampler, on one exported model, in one process, rounds
interleaved: `generator.onnx` on the whole batch and in slices, against `Sampler` (the student and
its decoder, decoding included) in fp32 and in the dtype `--dtype auto` picks. Also how far the ONNX
digits are from torch's (fp32) on the same noise.

    ddream export RUNS/main-export --onnx --state-dir RUNS/main
    python benchmarks/onnx_speed.py --folder RUNS/main-export [--n 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from ddream.sampler import Sampler, SampleRequest, class_rows
from ddream.state import StateDir


def cpu_name() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Model name" in ln), "?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, required=True, help="a folder `export --onnx` wrote")
    parser.add_argument("--n", type=int, default=20_000, help="digits per timed draw")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (best is kept)")
    parser.add_argument("--slice", type=int, default=1024, help="rows per onnxruntime call, sliced")
    args = parser.parse_args()

    cpu = torch.device("cpu")
    state = StateDir(args.folder)
    samplers = {dtype: Sampler.student(state, cpu, dtype) for dtype in ("fp32", "auto")}
    labels, _ = class_rows(args.n, tuple(range(10)))
    noise = samplers["fp32"].noise(args.n, 0)
    session = ort.InferenceSession(
        str(args.folder / "generator.onnx"), providers=["CPUExecutionProvider"]
    )
    feed_noise, feed_labels = noise.numpy(), labels.numpy()

    def onnx_whole() -> np.ndarray:
        return session.run(None, {"noise": feed_noise, "label": feed_labels})[0]

    def onnx_sliced() -> np.ndarray:
        parts = [
            session.run(None, {"noise": feed_noise[i : i + args.slice],
                               "label": feed_labels[i : i + args.slice]})[0]
            for i in range(0, args.n, args.slice)
        ]  # fmt: skip
        return np.concatenate(parts)

    def torch_draw(dtype: str):
        sampler = samplers[dtype]
        req = SampleRequest(n=args.n, seed=0)
        return lambda: sampler.generate(labels, req, noise=noise)[0]

    variants = {
        "onnxruntime, whole batch": onnx_whole,
        f"onnxruntime, slices of {args.slice}": onnx_sliced,
        "ddream Sampler, fp32": torch_draw("fp32"),
        f"ddream Sampler, --dtype auto ({samplers['auto'].dtype})": torch_draw("auto"),
    }
    for fn in variants.values():  # warm-up
        fn()
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(args.rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)

    want = torch_draw("fp32")().numpy().astype(int)
    diff = np.abs(onnx_sliced().astype(int) - want)
    print(f"CPU: {cpu_name()}, {torch.get_num_threads()} threads; torch {torch.__version__}, "
          f"onnxruntime {ort.__version__}, Python {platform.python_version()}")  # fmt: skip
    print(f"ONNX vs torch fp32 on {args.n} digits: max {diff.max()} grey levels, "
          f"{(diff > 0).mean():.4%} of pixels differ")  # fmt: skip
    reference = best["ddream Sampler, fp32"]
    print("| sampler | digits/s | vs ddream fp32 |")
    print("| --- | --- | --- |")
    for name, seconds in best.items():
        print(f"| {name} | {args.n / seconds:,.0f} | {reference / seconds:.2f}x |")


if __name__ == "__main__":
    main()
