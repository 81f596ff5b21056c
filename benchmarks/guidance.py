"""Guidance sweep: FID, class accuracy, precision and recall of a trained state dir at several
classifier-free guidance scales, to choose the default by measurement.

    python benchmarks/guidance.py --state-dir STATE --data-dir ../shared/data/mnist --n 2000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--cfg", type=float, nargs="+", default=[1.0, 1.25, 1.5, 2.0])
    args = ap.parse_args()
    print(f"| cfg | FID | class acc. | precision | recall | real-data floor FID ({args.n} digits) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for cfg in args.cfg:
        out = subprocess.run(
            [sys.executable, "-m", "ddream", "eval", "--state-dir", str(args.state_dir), "--data-dir",
             str(args.data_dir), "--n", str(args.n), "--steps", str(args.steps), "--cfg", str(cfg),
             "--device", "cpu", "--json"],
            check=True, capture_output=True, text=True,
        ).stdout
        r = json.loads(out)
        g = r["generation"]
        print(f"| {cfg} | {g['fid']:.2f} | {g['class_accuracy']:.2%} | {g['precision']:.3f} | "
              f"{g['recall']:.3f} | {r['real_floor']['fid']:.2f} |")


if __name__ == "__main__":
    main()
