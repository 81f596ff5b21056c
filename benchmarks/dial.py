"""The guidance dial, measured: FID, class accuracy, precision and recall of the one-step student at
several guidance scales w (and, with --teacher, of its teacher at the same w with the sampler that
drew the student's pairs), side by side on `ddream eval`'s extractor; and the dial's picture: the
same noise at each w, a row per w.

    python benchmarks/dial.py --state-dir STATE --data-dir DIR \\
        --cfg 1.0 1.25 1.5 2.0 3.0 --teacher --picture docs/dial.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from common import Scorer, add_state_dir, append_json, score_cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_state_dir(ap, "a state dir whose distill stage made a guidance-conditioned student")
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--cfg", type=float, nargs="+", default=[1.0, 1.25, 1.5, 2.0, 3.0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--teacher", action="store_true", help="score the teacher at each w too")
    ap.add_argument("--picture", type=Path, help="write the dial's picture (PNG) here")
    ap.add_argument("--json", type=Path, help="append each row to this JSON-lines file")
    args = ap.parse_args()

    from ddream.render import grid, write_png
    from ddream.sampler import Sampler, SampleRequest, dial_images
    from ddream.state import StateDir

    state = StateDir(args.state)
    cpu = torch.device("cpu")
    student = Sampler.from_state(state, cpu, "student")
    models = [("student", student, {})]
    if args.teacher:
        distill = state.record("distill")["config"]["distill"]
        interval = tuple(state.record("distill")["config"]["interval"])
        pairs_sampler = {
            "steps": distill["teacher_steps"],
            "solver": distill["teacher_solver"],
            "cfg_interval": interval,
        }
        models.append(("teacher", Sampler.from_state(state, cpu, "teacher"), pairs_sampler))
    scorer = Scorer(args.state, args.data_dir)
    print("| model | sampler | w | FID | class acc. | precision | recall |")
    print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for w in args.cfg:
        for name, sampler, extra in models:
            req = sampler.resolve(SampleRequest(n=args.n, seed=args.seed, cfg=w, **extra))
            g = scorer.score(sampler, req, args.n)
            how = f"{req.solver} {req.steps}" + (
                f", guidance on t in [{req.cfg_interval[0]}, {req.cfg_interval[1]}]"
                if name == "teacher"
                else ""
            )
            print(f"| {name} | {how} | {w:g} | {score_cells(g)} |", flush=True)
            append_json(args.json, {"model": name, "w": w, **g.__dict__})
    if args.picture:
        classes = tuple(range(10))
        req = student.resolve(SampleRequest(n=10, classes=classes, seed=args.seed))
        rows = dial_images(student, req, args.cfg)
        labels = [f"{w:g}" for w in args.cfg]
        write_png(args.picture, grid(torch.cat(rows), 10, scale=2, row_labels=labels))
        print(f"wrote {args.picture}")


if __name__ == "__main__":
    main()
