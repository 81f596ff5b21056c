"""The distill stage in fp32 and in bf16, one after the other from the same trained state dir: its
setup (the judges and the teacher's pairs) and its training loop, as its record keeps them. Each
variant distils a copy of the state dir's autoencoder, latents and DiT with every other setting at
its default; the student's quality is `ddream eval`'s (run it on the copies: --work/NAME).

    python benchmarks/distill_dtype.py --state-dir RUN --work DIR [--variants fp32 bf16]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from common import add_state_dir

import ddream.pairs
import ddream.stages.distill
import ddream.student_losses
from ddream.config import DistillConfig
from ddream.stages.distill import distill
from ddream.state import StateDir

MODULES = (ddream.pairs, ddream.stages.distill, ddream.student_losses)


def copy_state(src: Path, dst: Path) -> StateDir:
    """The autoencoder, latents and DiT of `src` (and their records), without its student."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for folder in ("ae", "latents", "dit"):
        shutil.copytree(src / folder, dst / folder)
    data = json.loads((src / "state.json").read_text())
    data["stages"].pop("distill", None)
    data.pop("run", None)
    (dst / "state.json").write_text(json.dumps(data, indent=2))
    return StateDir(dst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_state_dir(ap, "a state dir with the autoencoder, latents and DiT trained")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--variants", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    args = ap.parse_args()
    rows = []
    for dtype in args.variants:
        for module in MODULES:
            module.training_dtype = lambda _device, _work, d=dtype: d
        state = copy_state(args.state, args.work / dtype)
        t0 = time.perf_counter()
        distill(state, DistillConfig(), device=torch.device("cpu"), seed=0, quiet=True)
        whole = time.perf_counter() - t0
        rec = state.record("distill")
        rows.append((dtype, whole, rec["setup_time"], rec["wall_time"], rec["metrics"]))
    base = rows[0][1]
    print(
        "| distill | whole stage | setup (judges, pairs) | training loop | ratio | judge accuracy |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for dtype, whole, setup, loop, m in rows:
        print(f"| {dtype} | {whole:.0f} s | {setup:.0f} s | {loop:.0f} s | {whole / base:.2f}x | "
              f"{m['judge_acc']:.1%} |")  # fmt: skip


if __name__ == "__main__":
    main()
