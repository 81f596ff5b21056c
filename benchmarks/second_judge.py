"""A second judge of class accuracy: a classifier of another kind (an MLP on the pixels, where
`ddream eval` uses a CNN), trained here on the training digits, scores the students of several state
dirs at several guidance scales, and the real test digits. When a change lifts class accuracy on
both judges, its digits are more legible, not fitted to one network.

    python benchmarks/second_judge.py --data-dir DIR \\
        --state old=RUNS/d5/cg0 --state new=RUNS/d6/cw0.1 --cfg 1.0 1.2 1.4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def train_judge(images: torch.Tensor, labels: torch.Tensor, epochs: int = 6) -> nn.Module:
    """An MLP (784-512-512-10) on [0, 1] pixels, seeded, AdamW on a cosine schedule."""
    torch.manual_seed(0)
    judge = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
        nn.Linear(512, 10),
    )  # fmt: skip
    opt = torch.optim.AdamW(judge.parameters(), lr=1e-3, weight_decay=1e-4)
    steps = epochs * (len(labels) // 128)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(epochs):
        order = torch.randperm(len(labels))
        for i in range(len(labels) // 128):
            idx = order[i * 128 : (i + 1) * 128]
            loss = F.cross_entropy(judge(images[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return judge.eval()


@torch.no_grad()
def accuracy(judge: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    hits = sum(
        int((judge(images[i : i + 2000]).argmax(1) == labels[i : i + 2000]).sum())
        for i in range(0, len(labels), 2000)
    )
    return hits / len(labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--state", action="append", required=True, help="NAME=STATE_DIR")
    ap.add_argument("--cfg", type=float, nargs="+", default=[1.0])
    ap.add_argument("--n", type=int, default=10_000)
    args = ap.parse_args()

    from ddream.artifacts import load_ae_with_dataset, load_dataset
    from ddream.sampler import Sampler, SampleRequest
    from ddream.stages.evaluate import balanced_labels, generate
    from ddream.state import StateDir

    first = StateDir(Path(args.state[0].partition("=")[2]))
    _, _, dataset = load_ae_with_dataset(first, torch.device("cpu"))
    train, test = load_dataset(first, args.data_dir, dataset["name"])
    judge = train_judge(train.images.float() / 255, train.labels)
    real = accuracy(judge, test.images.float() / 255, test.labels)
    print(f"second judge (MLP on pixels): real test digits {real:.2%}")
    print("| state | w | class acc. (second judge) |")
    print("| --- | --- | --- |")
    labels = balanced_labels(args.n)
    for spec in args.state:
        name, _, path = spec.partition("=")
        sampler = Sampler.from_state(StateDir(Path(path)), torch.device("cpu"), "student")
        for w in args.cfg:
            fake = generate(sampler, labels, sampler.resolve(SampleRequest(n=args.n, cfg=w)))
            print(f"| {name} | {w:g} | {accuracy(judge, fake.float(), labels):.2%} |", flush=True)


if __name__ == "__main__":
    main()
