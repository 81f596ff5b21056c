"""Sampling table, one run: the teacher at Euler/Heun 1-12 steps and the student at 1 and 2 steps,
each with FID / class accuracy / precision / recall (`ddream eval`'s extractor) and digits/s end to
end (noise, network, decoding, uint8, writing the .npz; best of 3), beside the digitdreamer preset's
12 Euler steps and an older commit's default sampler timed on the same state dir and machine.

    python benchmarks/sampling.py --data-dir DIR --state RUNS/ref \
        [--baseline RUNS/dd] [--old-commit a95463b [--old-state DIR]] [--n 10000] \
        [--dtype auto fp32] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from common import Scorer, add_state_dir, at, worktree

ROOT = Path(__file__).resolve().parents[1]
TEACHER = [("euler", 1), ("euler", 2), ("euler", 4), ("euler", 12), ("heun", 2), ("heun", 3)]
TEACHER += [("heun", 6), ("heun", 12)]

OLD_TIMER = """
import sys, time, tempfile, torch
from pathlib import Path
from ddream.render import write_npz
import ddream.stages.sample as m  # where commits before the refactor (issue 13) kept the sampler
if not hasattr(m, "class_rows"):
    import ddream.sampler as m
Sampler, SampleRequest, class_rows = m.Sampler, m.SampleRequest, m.class_rows
from ddream.state import StateDir
torch.set_num_threads(torch.get_num_threads())
s = Sampler.from_state(StateDir(sys.argv[1]), torch.device("cpu"))
n = int(sys.argv[2]); req = s.resolve(SampleRequest(n=n)); labels, _ = class_rows(n, tuple(range(10)))
out = Path(tempfile.mkdtemp()) / "x.npz"; s.generate(labels[:500], req)
best = 1e9
for seed in range(3):
    t0 = time.perf_counter()
    images, _ = s.generate(labels, SampleRequest(**{**req.__dict__, "seed": seed}))
    write_npz(out, images, labels)
    best = min(best, time.perf_counter() - t0)
print(req.steps, req.solver, req.cfg, n / best)
"""


def end_to_end(sampler, req, n: int, repeats: int = 3) -> float:
    """Digits/s of what `ddream sample --n N --npz` does after loading: best of `repeats`."""
    from ddream.render import write_npz
    from ddream.sampler import class_rows

    labels, _ = class_rows(n, tuple(range(10)))
    out = Path(tempfile.mkdtemp()) / "x.npz"
    sampler.generate(labels[:500], req)  # warm-up
    best = float("inf")
    for seed in range(repeats):
        t0 = time.perf_counter()
        images, _ = sampler.generate(labels, dataclasses.replace(req, seed=seed))
        write_npz(out, images, labels)
        best = min(best, time.perf_counter() - t0)
    return n / best


def old_commit_rate(commit: str, state: Path, n: int) -> str:
    """The older commit's default sampler on the same state dir, timed in its own process."""
    with worktree(commit) as tree:
        out = at(tree, "-c", OLD_TIMER, str(state), str(n), capture=True)
    return out.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    add_state_dir(ap)
    ap.add_argument("--baseline", type=Path, help="a trained digitdreamer-preset state dir")
    ap.add_argument("--old-commit", default="a95463b")
    ap.add_argument(
        "--old-state",
        type=Path,
        help="the state dir the old commit samples (default: --state); a commit older than a model "
        "layout cannot read it (io 'shuffle' autoencoders: give it a model of the old layout)",
    )
    ap.add_argument("--n", type=int, default=10_000, help="samples scored per row")
    ap.add_argument("--speed-n", type=int, default=20_000, help="digits per timed run")
    ap.add_argument(
        "--rows",
        default="all",
        help="all; student (its rows only); or speed (the student, the digitdreamer preset and the "
        "old commit: the rows the speed ratios need)",
    )
    ap.add_argument(
        "--dtype",
        nargs="+",
        default=["auto"],
        help="what sampling computes in (auto, fp32, bf16), a set of rows for each",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from ddream.sampler import Sampler, SampleRequest
    from ddream.state import StateDir

    cpu = torch.device("cpu")
    st = StateDir(args.state)
    scorer = Scorer(args.state, args.data_dir)
    cpu_name = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
        platform.processor(),
    )
    print(f"\n{cpu_name}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d')}\n")  # fmt: skip
    print("| model | sampler | cfg | FID | class acc. | precision | recall | digits/s end to end |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = []

    def row(label: str, sampler, req) -> None:
        req = sampler.resolve(req)
        g = scorer.score(sampler, req, args.n)
        speed = end_to_end(sampler, req, args.speed_n)
        label = f"{label}, {sampler.dtype}"
        rows.append({"label": label, "steps": req.steps, "solver": req.solver, "cfg": req.cfg,
                     **g.__dict__, "digits_per_s": speed})  # fmt: skip
        print(f"| {label} | {req.solver} {req.steps} | {req.cfg} | {g.fid:.2f} | "
              f"{g.class_accuracy:.2%} | {g.precision:.3f} | {g.recall:.3f} | {speed:,.0f} |",
              flush=True)  # fmt: skip

    for dtype in args.dtype:
        if st.view("distill").status == "done":
            student = Sampler.from_state(st, cpu, "student", dtype)
            for steps in (1, 2):
                row(
                    f"student ({student.decoder_name} decoder)",
                    student,
                    SampleRequest(n=args.n, steps=steps),
                )
        if args.rows == "all":
            teacher = Sampler.from_state(st, cpu, "teacher", dtype)
            for solver, steps in TEACHER:
                row("teacher", teacher, SampleRequest(n=args.n, steps=steps, solver=solver))
        if args.rows in ("all", "speed") and args.baseline:
            base = Sampler.from_state(StateDir(args.baseline), cpu, "teacher", dtype)
            req = SampleRequest(n=args.n, steps=12, solver="euler")
            row("digitdreamer preset", base, req)
            # its decoder as ddream ran it before inference_decoder chunked plain decoders too
            # (2026-11-29): the whole batch at once. The same digits, so timed only.
            base.decoder = base.decoder.decoder
            speed = end_to_end(base, base.resolve(req), args.speed_n)
            rows.append({"label": "digitdreamer preset, decoded whole", "digits_per_s": speed})
            print(f"| digitdreamer preset, decoded in one batch (as before), {base.dtype} | "
                  f"euler 12 | | (the same digits) | | | | {speed:,.0f} |", flush=True)  # fmt: skip
    if args.rows in ("all", "speed"):
        if args.old_commit:
            old = old_commit_rate(args.old_commit, args.old_state or args.state, args.speed_n)
            where = f"on {args.old_state}" if args.old_state else "on this state dir"
            print(f"\n{args.old_commit}'s default sampler {where} (steps solver cfg "
                  f"digits/s): {old}")  # fmt: skip
            rows.append({"label": f"{args.old_commit} default", "raw": old})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
