"""A commit against a fixed older one, in one run: `ddream all` of each (wall time, peak memory, each
stage's time, and the whole-run estimate it printed at its start), `ddream eval` of each (each with
its own code), and the default sampler's digits/s of each model timed in turns in fresh processes
(the median over the rounds). Both run from git worktrees, so the checkout may change meanwhile.

    python benchmarks/against_commit.py --commit 87ad28a --data-dir DIR --work RUNS/vs \\
        [--seed 1] [--profile fast] [--json RUNS/vs/result.json]

--old-state DIR --old-seconds S --old-rss MIB reuse the older side's `ddream all`, run alone
earlier on this machine at the same seed (its wall time and peak memory as measured then), so that
a second comparison (another seed, or the kernels held to AVX2) need not train it again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, at, worktree

TIMER = """
import sys, time, torch
from ddream.sampler import Sampler, SampleRequest, class_rows
from ddream.state import StateDir
torch.set_num_threads(torch.get_num_threads())
s = Sampler.from_state(StateDir(sys.argv[1]), torch.device("cpu"), "auto")
n = int(sys.argv[2]); req = s.resolve(SampleRequest(n=n)); labels, _ = class_rows(n, tuple(range(10)))
s.generate(labels, req)
best = min((lambda t0: (s.generate(labels, req), time.perf_counter() - t0)[1])(time.perf_counter())
           for _ in range(3))
print(n / best)
"""


def run(code: Path, *args: str, capture: bool = False) -> tuple[float, str]:
    """`python -m ddream ARGS` with the package at `code`: (wall seconds, stdout if captured)."""
    t0 = time.perf_counter()
    out = at(code, "-m", "ddream", *args, capture=capture)
    return time.perf_counter() - t0, out


def run_all(code: Path, state: Path, args) -> dict:
    """`ddream all` of the package at `code`, alone: wall seconds, peak RSS, the whole-run estimate
    its first line printed, and its log beside the state dir."""
    log = state.with_suffix(".log")
    cmd = [sys.executable, "-m", "ddream", "all", "--data-dir", str(args.data_dir), "--state-dir",
           str(state), "--device", "cpu", "--seed", str(args.seed), "--profile", args.profile]  # fmt: skip
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=code, env={**os.environ, "PYTHONPATH": str(code)},
                                stdout=f, stderr=subprocess.STDOUT)  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"ddream all failed at {code}: see {log}")
    wall = time.perf_counter() - t0
    first = re.search(r"whole run: about (\d+):(\d\d):(\d\d) left", log.read_text())
    eta = int(first[1]) * 3600 + int(first[2]) * 60 + int(first[3]) if first else None
    return {"all_s": round(wall, 1), "rss_mib": round(usage.ru_maxrss / 1024), "eta_s": eta}


def rate(code: Path, state: Path, n: int) -> float:
    return float(at(code, "-c", TIMER, str(state), str(n), capture=True).strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commit", required=True, help="the older commit to compare with")
    ap.add_argument("--new", default="HEAD", help="the newer commit (default: HEAD)")
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--n", type=int, default=10_000, help="eval samples")
    ap.add_argument("--rate-n", type=int, default=20_000, help="digits per timed sampling call")
    ap.add_argument("--rounds", type=int, default=3, help="sampling timings of each, in turns")
    ap.add_argument("--seed", type=int, default=0, help="`ddream all --seed`")
    ap.add_argument("--profile", default="reference", help="`ddream all --profile`")
    ap.add_argument("--old-state", type=Path, help="the older side's finished state dir, reused")
    ap.add_argument("--old-seconds", type=float, help="its `ddream all` wall time")
    ap.add_argument("--old-rss", type=float, help="its `ddream all` peak RSS in MiB")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    new = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.new], check=True,
                         capture_output=True, text=True).stdout.strip()  # fmt: skip
    with worktree(args.commit) as old_tree, worktree(new) as new_tree:
        compare({f"old ({args.commit})": old_tree, f"new ({new})": new_tree}, args)


def compare(sides: dict[str, Path], args) -> None:
    out: dict = {}
    for name, code in sides.items():
        state = args.work / name.split()[0]
        if name.startswith("old") and args.old_state:
            state = args.old_state
            timed = {"all_s": args.old_seconds, "rss_mib": args.old_rss, "eta_s": None}
        else:
            timed = run_all(code, state, args)
        records = json.loads((state / "state.json").read_text())["stages"]
        out[name] = {
            "state": str(state),
            **timed,
            "stages_s": {k: round(v.get("wall_time", 0), 1) for k, v in records.items()},
            "test_psnr": records["ae"]["metrics"]["test_psnr"],
        }
        print(name, json.dumps(out[name]), flush=True)
    for name, code in sides.items():
        state = Path(out[name]["state"])
        _, text = run(code, "eval", "--data-dir", str(args.data_dir), "--state-dir", str(state),
                      "--n", str(args.n), "--device", "cpu", "--json", capture=True)  # fmt: skip
        out[name]["eval"] = json.loads(text)
        print(name, json.dumps(out[name]["eval"]["generation"]), flush=True)
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, code in sides.items():
            rates[name].append(rate(code, Path(out[name]["state"]), args.rate_n))
    for name in sides:
        out[name]["digits_per_s"] = [round(r) for r in rates[name]]
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    old, new = out.values()
    print("\n| | `ddream all` | estimate at its start | peak RSS | train-ae | encode | train-dit | "
          "distill loop | test PSNR | FID | class acc. | precision | recall | digits/s (median; "
          "each round's best) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in out.items():
        st, g = r["stages_s"], r["eval"]["generation"]
        eta = f"{r['eta_s']} s" if r["eta_s"] else ""
        print(f"| {name} | {r['all_s']:.0f} s | {eta} | {r['rss_mib']:.0f} MiB | {st.get('ae', 0):.0f} s"
              f" | {st.get('encode', 0):.0f} s | {st.get('dit', 0):.0f} s | {st.get('distill', 0):.0f} s"
              f" | {r['test_psnr']:.2f} dB | {g['fid']:.2f} | {g['class_accuracy']:.2%} | "
              f"{g['precision']:.3f} | {g['recall']:.3f} | {statistics.median(r['digits_per_s']):,.0f}"
              f" ({', '.join(f'{x:,}' for x in r['digits_per_s'])}) |")  # fmt: skip
    print(
        f"\nnew / old: `ddream all` {new['all_s'] / old['all_s']:.3f}x; digits/s (medians) "
        f"{statistics.median(new['digits_per_s']) / statistics.median(old['digits_per_s']):.3f}x"
    )


if __name__ == "__main__":
    main()
