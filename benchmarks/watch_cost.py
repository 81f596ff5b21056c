"""What watching a run costs: `ddream all` of a commit from before the history and snapshots and of
the commit with them, one after the other in one run (git worktrees), each stage's wall time from its
record; and the newer run's own account of the seconds its history, snapshots (and TensorBoard, with
--tensorboard) took inside each stage (the record's watch_time), which no machine noise blurs.

    python benchmarks/watch_cost.py --commit 7c0a4d9 --data-dir DIR \\
        --work RUNS/watch --json RUNS/watch/result.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from common import ROOT, append_json, at, worktree

TRAINED = ("ae", "dit", "distill")


def ddream_all(code: Path, state: Path, data_dir: Path, *extra: str) -> float:
    """`ddream all` with the package at `code`: its wall seconds."""
    t0 = time.perf_counter()
    at(code, "-m", "ddream", "all", "--data-dir", str(data_dir), "--state-dir", str(state),
       "--quiet", *extra)  # fmt: skip
    return time.perf_counter() - t0


def stage_times(state: Path) -> dict[str, dict[str, float]]:
    stages = json.loads((state / "state.json").read_text())["stages"]
    return {
        s: {"wall": r.get("wall_time", 0.0), "watch": r.get("watch_time", 0.0)}
        for s, r in stages.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commit", default="7c0a4d9", help="a commit from before the history")
    ap.add_argument("--new", default="HEAD")
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--tensorboard", action="store_true", help="the newer run writes events too")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    new = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.new], check=True,
                         capture_output=True, text=True).stdout.strip()  # fmt: skip
    extra = ["--tensorboard", str(args.work / "tb")] if args.tensorboard else []
    runs = {}
    with worktree(args.commit) as old_tree, worktree(new) as new_tree:
        for name, tree, flags in ((args.commit, old_tree, []), (new, new_tree, extra)):
            state = args.work / name
            seconds = ddream_all(tree, state, args.data_dir, *flags)
            runs[name] = {"all": round(seconds, 1), "stages": stage_times(state)}
            print(f"{name}: ddream all {seconds:.0f} s", flush=True)
        # what the end of `ddream all` adds: the curves and GIFs, timed as `ddream plot` (in-process)
        code = "import sys, time; from ddream.cli import main\nt0 = time.perf_counter()\ntry: main(sys.argv[1:])\nexcept SystemExit: pass\nprint(time.perf_counter() - t0)"
        out = at(new_tree, "-c", code, "plot", "--state-dir", str(args.work / new), "--out",
                 str(args.work / "plots"), capture=True)  # fmt: skip
        runs[new]["plot"] = round(float(out.strip().splitlines()[-1]), 2)
    old, ours = runs[args.commit], runs[new]
    print(
        f"\n| | {args.commit} | {new} | ratio | of it: history + snapshots{' + TensorBoard' if extra else ''} |"
    )
    print("| --- | --- | --- | --- | --- |")
    watch_total = 0.0
    for stage in (*TRAINED, "encode"):
        a, b = old["stages"][stage]["wall"], ours["stages"][stage]["wall"]
        w = ours["stages"][stage]["watch"]
        watch_total += w
        share = f"{w:.1f} s ({w / b:.2%})" if stage in TRAINED else ""
        print(f"| {stage} | {a:.0f} s | {b:.0f} s | {b / a:.3f} | {share} |")
    plot = ours["plot"]
    print(f"| the pictures at the end (`ddream plot`) | | {plot:.1f} s | | {plot:.1f} s |")
    print(f"| `ddream all` | {old['all']:.0f} s | {ours['all']:.0f} s | {ours['all'] / old['all']:.3f} "
          f"| {watch_total + plot:.1f} s ({(watch_total + plot) / ours['all']:.2%}) |")  # fmt: skip
    append_json(args.json, {"time": time.strftime("%Y-%m-%d %H:%M"), "runs": runs,
                            "tensorboard": args.tensorboard})  # fmt: skip


if __name__ == "__main__":
    main()
