"""Teacher sweep: retrain only the DiT of a finished state dir with several train-dit settings, then
score each teacher at several samplers (FID, class accuracy, precision, recall on `ddream eval`'s
extractor), side by side in one run, to find the DiT that draws the most varied good digits.

    python benchmarks/teacher.py --state-dir STATE --data-dir DIR --work /tmp/t \\
        --variant "today:" --variant "w256:--width 256" --sampler 12,heun,1.0,0,1
"""

from __future__ import annotations

import argparse
import shlex
import shutil
from pathlib import Path

import torch
from common import Scorer, add_state_dir, append_json, score_cells, timed_ddream


def copy_upto_encode(src: Path, dst: Path) -> None:
    """The state dir with its autoencoder, latents and eval classifier, without DiT or student."""
    from ddream.state import StateDir

    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for part in ("ae", "latents", "eval"):
        if (src / part).exists():
            shutil.copytree(src / part, dst / part)
    shutil.copy(src / "state.json", dst / "state.json")
    for stage in ("distill", "dit"):
        StateDir(dst).drop_record(stage)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_state_dir(ap, "a state dir with ae and encode done (and eval's classifier cached)")
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--variant", action="append", required=True, help="NAME:train-dit options")
    ap.add_argument(
        "--sampler", action="append", help="STEPS,SOLVER,CFG,LO,HI (default 12,heun,1.0,0,1)"
    )
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--json", type=Path, help="append each row to this JSON-lines file")
    args = ap.parse_args()

    from ddream.sampler import Sampler, SampleRequest
    from ddream.state import StateDir

    samplers = args.sampler or ["12,heun,1.0,0,1"]
    print(
        "| teacher | train-dit options | train s | sampler | FID | class acc. | precision | recall |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for variant in args.variant:
        name, _, opts = variant.partition(":")
        state = args.work / name
        copy_upto_encode(args.state, state)
        train_s, _ = timed_ddream(
            "train-dit", "--state-dir", str(state), "--device", "cpu", "--quiet",
            *shlex.split(opts),
        )  # fmt: skip
        scorer = Scorer(state, args.data_dir)
        sampler = Sampler.from_state(StateDir(state), torch.device("cpu"), "teacher")
        for spec in samplers:
            steps, solver, cfg, lo, hi = spec.split(",")
            req = SampleRequest(
                n=args.n, steps=int(steps), solver=solver, cfg=float(cfg),
                cfg_interval=(float(lo), float(hi)),
            )  # fmt: skip
            g = scorer.score(sampler, sampler.resolve(req), args.n)
            print(f"| {name} | `{opts}` | {train_s:.0f} | {spec} | {score_cells(g)} |", flush=True)
            row = {"name": name, "opts": opts, "train_s": train_s, "sampler": spec}
            append_json(args.json, {**row, **g.__dict__})


if __name__ == "__main__":
    main()
