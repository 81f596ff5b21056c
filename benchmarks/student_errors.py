"""Where the one-step student and its teacher disagree: both draw from the same noises and classes
at one w (the teacher as distill draws its pairs: 12 Heun steps, autoguidance 1.5 when the state
has a guide, CFG on t <= 0.5), `ddream eval`'s classifier
names each digit, and the script counts the digits each miscalls, how far apart the two latents are
there, and (with --picture) shows the digits only the student miscalls beside the teacher's.

    python benchmarks/student_errors.py --state RUNS/d5/cg2 --data-dir DIR \
        --w 1.2 --picture /tmp/only_student.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from common import Scorer, add_state_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_state_dir(ap)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--w", type=float, default=1.2)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--picture", type=Path, help="a PNG: student | teacher, where only it errs")
    args = ap.parse_args()

    import imageio.v3 as iio

    from ddream.artifacts import load_dit, load_guide
    from ddream.flow import guided_velocity, sample_ode
    from ddream.models.dit import AutoGuided
    from ddream.runtime import autocast
    from ddream.sampler import Sampler, SampleRequest
    from ddream.stages.evaluate import balanced_labels, features
    from ddream.state import StateDir

    cpu = torch.device("cpu")
    scorer = Scorer(args.state, args.data_dir)
    st = StateDir(args.state)
    student = Sampler.from_state(st, cpu, "student")
    labels = balanced_labels(args.n)
    noise = torch.randn((args.n, *student.shape), generator=torch.Generator().manual_seed(123))
    req = student.resolve(SampleRequest(n=args.n, cfg=args.w))
    with torch.inference_mode():
        z_student, _ = sample_ode(student._velocity(labels, req), noise, 1)
    teacher, _, _ = load_dit(st, cpu)
    guide = load_guide(st, cpu)
    draw = teacher if guide is None else AutoGuided(teacher, guide, 1.5)
    with torch.inference_mode():
        parts = []
        for i in range(0, args.n, 2000):
            cast = lambda: autocast(cpu)  # noqa: E731
            v = guided_velocity(draw, labels[i : i + 2000], args.w, (0.0, 0.5), 2000, cast)
            parts.append(sample_ode(v, noise[i : i + 2000], 12, "heun")[0])
        z_teacher = torch.cat(parts)
        images = [student.decode(z) for z in (z_student, z_teacher)]
    preds = [features(scorer.clf, im.float() / 255, cpu)[1] for im in images]
    wrong_s, wrong_t = (p != labels for p in preds)
    only = wrong_s & ~wrong_t
    dist = (z_student - z_teacher).pow(2).flatten(1).mean(1)
    print(
        f"w {args.w}: student miscalls {int(wrong_s.sum())}, teacher {int(wrong_t.sum())}, "
        f"both {int((wrong_s & wrong_t).sum())}; latent distance (mean square) {dist.mean():.4f} "
        f"overall, {dist[only].mean():.4f} where only the student errs"
    )
    if args.picture is not None:
        pick = only.nonzero().flatten()[:24]
        gap = np.full((28, 2), 128, np.uint8)
        pairs = [np.concatenate([images[0][i].numpy(), gap, images[1][i].numpy()], 1) for i in pick]
        rows = [np.concatenate(pairs[i : i + 6], 1) for i in range(0, len(pairs) - 5, 6)]
        if rows:
            iio.imwrite(args.picture, np.kron(np.concatenate(rows), np.ones((3, 3), np.uint8)))


if __name__ == "__main__":
    main()
