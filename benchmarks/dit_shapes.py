"""DiT shape sweep: retrain only the DiT of a finished state dir in several shapes, then score each
teacher with `ddream eval` (FID, class accuracy, precision, recall, sampling speed) at the teacher's
own default sampler unless --steps/--cfg/--solver say otherwise, side by side in one run.

    python benchmarks/dit_shapes.py --state-dir STATE --data-dir DIR
    (the table in BENCHMARKS.md was made with --steps 12 --solver euler --cfg 1.25, then the defaults)
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from common import ddream, timed_ddream

SHAPES = {  # name: train-dit options
    "w128 d6 p1 (4 tokens)": ["--width", "128", "--depth", "6", "--patch-size", "1"],
    "w128 d6 p2 (1 token)": ["--width", "128", "--depth", "6", "--patch-size", "2"],
    "w96 d4 p1 (4 tokens)": ["--width", "96", "--depth", "4", "--patch-size", "1"],
    "w64 d4 p1 (4 tokens)": ["--width", "64", "--depth", "4", "--patch-size", "1"],
    "w96 d6 p2 (1 token)": ["--width", "96", "--depth", "6", "--patch-size", "2"],
    "w64 d6 p2 (1 token)": ["--width", "64", "--depth", "6", "--patch-size", "2"],
    "w64 d4 p2 (1 token)": ["--width", "64", "--depth", "4", "--patch-size", "2"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--state-dir", type=Path, required=True, help="a state dir with ae and encode done"
    )
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ddream-bench-dit-shapes"))
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--cfg", type=float, help="default: the teacher's own")
    ap.add_argument("--steps", type=int, help="default: the teacher's own")
    ap.add_argument("--solver", help="default: the teacher's own")
    ap.add_argument(
        "--only", nargs="*", help="shape names to run (their first words, e.g. 'w64 d6 p2')"
    )
    args = ap.parse_args()
    shapes = {k: v for k, v in SHAPES.items() if not args.only or k.split(" (")[0] in args.only}
    sampler = []  # the teacher's own steps, solver and guidance unless given
    for flag, value in (("--steps", args.steps), ("--solver", args.solver), ("--cfg", args.cfg)):
        sampler += [flag, str(value)] if value is not None else []
    print(
        f"| DiT | train-dit (10 epochs) | FID | class acc. | precision | recall | digits/s ({args.n}, "
        f"teacher, {' '.join(sampler) or 'its own sampler'}) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, opts in shapes.items():
        state = args.work / name.split(" (")[0].replace(" ", "-")
        if state.exists():
            shutil.rmtree(state)
        shutil.copytree(args.state_dir, state, ignore=shutil.ignore_patterns("dit", "eval"))
        if (args.state_dir / "eval").exists():  # one feature extractor for every row
            shutil.copytree(args.state_dir / "eval", state / "eval")
        train_s, _ = timed_ddream(
            "train-dit", "--state-dir", str(state), "--device", "cpu", "--quiet", "--force", *opts
        )
        r = json.loads(
            ddream(
                "eval", "--state-dir", str(state), "--data-dir", str(args.data_dir), "--n",
                str(args.n), "--model", "teacher", *sampler, "--device", "cpu", "--json",
                capture=True,
            )
        )  # fmt: skip
        g = r["generation"]
        print(
            f"| {name} | {train_s:.0f} s | {g['fid']:.2f} | {g['class_accuracy']:.2%} | {g['precision']:.3f} | "
            f"{g['recall']:.3f} | {r['digits_per_s']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
