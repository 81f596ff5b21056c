"""Where sampling's time goes, and what each exact speed-up buys: the DiT by slice size, the decoder
plain (as commit a95463b ran it, the whole batch at once) against the fused one by chunk size, and
the parts of a student draw (noise, DiT, decoder, uint8, .npz). Best of N, one process.

    python benchmarks/sampling_parts.py --state RUNS/final [--n 20000] [--repeats 4]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from common import add_state_dir, best


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_state_dir(ap)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=4)
    args = ap.parse_args()

    from ddream.artifacts import load_ae
    from ddream.data import model_to_uint8
    from ddream.models.fused_decoder import Chunked, FusedDecoder
    from ddream.render import write_npz
    from ddream.sampler import Sampler, class_rows
    from ddream.state import StateDir

    cpu = torch.device("cpu")
    n, r = args.n, args.repeats
    sampler = Sampler.from_state(StateDir(args.state), cpu)
    labels, _ = class_rows(n, tuple(range(10)))
    noise = sampler.noise(n, 0)
    t1 = torch.ones(n)
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__}, {n:,} digits, {sampler.kind}\n")

    print("| DiT slice (rows) | rows/s |\n| --- | --- |")
    for rows in (n, 4096, 2048, 1024, 512):

        def dit(rows: int = rows) -> None:
            for x, t, y in zip(noise.split(rows), t1.split(rows), labels.split(rows), strict=True):
                sampler.dit(x, t, y)

        print(f"| {rows:,} | {n / best(dit, r):,.0f} |", flush=True)

    ae, _ = load_ae(StateDir(args.state), cpu)
    z = sampler.stats.unstandardise(noise)
    plain = ae.decoder.eval().to(memory_format=torch.channels_last)
    zc = z.contiguous(memory_format=torch.channels_last)
    print("\n| decoder | digits/s |\n| --- | --- |")
    print(
        f"| plain, channels-last, whole batch (a95463b) | {n / best(lambda: plain(zc), r):,.0f} |"
    )
    for chunk in (64, 128, 256, 1000, 4000):
        fused = Chunked(FusedDecoder(ae.decoder), chunk)
        print(
            f"| fused, chunks of {chunk} | {n / best(lambda f=fused: f(z), r):,.0f} |", flush=True
        )

    for _ in range(2):  # alternating, so that a noisy machine hurts both alike
        for gemm in (False, True):
            fused = Chunked(FusedDecoder(ae.decoder, gemm_head=gemm), 256)
            what = "matrix products (default)" if gemm else "convolutions"
            print(f"| fused, chunks of 256, 2x2 stage as {what} | "
                  f"{n / best(lambda f=fused: f(z), r):,.0f} |", flush=True)  # fmt: skip

    out = Path(tempfile.mkdtemp()) / "x.npz"
    parts = {"noise": 0.0, "DiT": 0.0, "decoder": 0.0, "uint8": 0.0, "npz": 0.0}
    velocity = sampler._velocity(labels, sampler.resolve(sampler_request(n)))
    for _ in range(r + 1):
        stamps = [time.perf_counter()]
        eps = sampler.noise(n, 1)
        stamps.append(time.perf_counter())
        z0 = eps - velocity(eps, t1)
        stamps.append(time.perf_counter())
        x = sampler.decoder(sampler.stats.unstandardise(z0))
        stamps.append(time.perf_counter())
        images = model_to_uint8(x)
        stamps.append(time.perf_counter())
        write_npz(out, images, labels)
        stamps.append(time.perf_counter())
        for key, a, b in zip(parts, stamps, stamps[1:], strict=False):
            parts[key] = b - a if not parts[key] else min(parts[key], b - a)
    total = sum(parts.values())
    print("\n| part of a one-step draw | seconds | share |\n| --- | --- | --- |")
    for key, sec in parts.items():
        print(f"| {key} | {sec:.3f} | {sec / total:.0%} |")
    print(f"| total | {total:.3f} | {n / total:,.0f} digits/s |")


def sampler_request(n: int):
    from ddream.sampler import SampleRequest

    return SampleRequest(n=n)


if __name__ == "__main__":
    main()
