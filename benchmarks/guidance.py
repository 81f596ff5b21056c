"""Sampler sweep: FID, class accuracy, precision, recall and speed of a trained state dir over
guidance scales, step counts and solvers, to choose the defaults by measurement.

    python benchmarks/guidance.py --state-dir STATE --data-dir DIR --n 2000
    python benchmarks/guidance.py --state-dir STATE --data-dir DIR --cfg 1.25 \\
        --steps 4 6 8 12 --solver euler heun
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from common import ddream


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--steps", type=int, nargs="+", default=[12])
    ap.add_argument("--solver", nargs="+", default=["euler"])
    ap.add_argument("--cfg", type=float, nargs="+", default=[1.0, 1.25, 1.5, 2.0])
    ap.add_argument(
        "--interval", nargs="+", default=["0,1"], help="guidance intervals LO,HI (t = 1 is noise)"
    )
    args = ap.parse_args()
    print(
        f"| solver | steps | cfg | interval | FID | class acc. | precision | recall | digits/s | "
        f"real-data floor FID ({args.n} digits) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for solver, steps, cfg, interval in itertools.product(
        args.solver, args.steps, args.cfg, args.interval
    ):
        lo, hi = interval.split(",")
        out = ddream(
            "eval", "--state-dir", str(args.state_dir), "--data-dir", str(args.data_dir),
            "--n", str(args.n), "--steps", str(steps), "--cfg", str(cfg), "--solver", solver,
            "--model", "teacher", "--cfg-interval", lo, hi, "--device", "cpu", "--json",
            capture=True,
        )  # fmt: skip
        r = json.loads(out)
        g = r["generation"]
        print(
            f"| {solver} | {steps} | {cfg} | [{lo}, {hi}] | {g['fid']:.2f} | {g['class_accuracy']:.2%} | "
            f"{g['precision']:.3f} | {g['recall']:.3f} | {r['digits_per_s']:.0f} | "
            f"{r['real_floor']['fid']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
