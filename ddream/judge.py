"""The distill stage's judge, trained here (models/judge.py PixelJudge): a small CNN that learns the
classes of the frozen autoencoder's decodings of the training latents (the digits the student's own
are decoded like), from its own seeded draws, and says how many of a set it names right. It gives
the student's class term its gradient and scores the student's validation digits; it is never
`ddream eval`'s network."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ddream.models.judge import PixelJudge
from ddream.runtime import ROWS, autocast, rows_per_call, seeded, training_dtype
from ddream.train import adamw

Decode = Callable[[torch.Tensor], torch.Tensor]  # standardised latents -> pixels in [-1, 1]


def decoded(decode: Decode, z: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The decodings of z, written slice by slice into one tensor on the CPU (a list of slices and
    their concatenation held the 60,000 digits twice: 245 MB more at the stage's peak)."""
    out, rows = None, rows_per_call("decoder", device)  # 256 on a CPU: faster, and smaller
    with torch.no_grad():  # not inference mode: the result is training data
        for i in range(0, len(z), rows):
            part = decode(z[i : i + rows].to(device)).float().cpu()
            if out is None:
                out = torch.empty((len(z), *part.shape[1:]))
            out[i : i + len(part)] = part
    return out


def fit(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    epochs: int,
    seed: int,
    device: torch.device,
    batch: int = 256,
    lr: float = 1e-3,
) -> nn.Module:
    """A judge of `images` (N, 1, 32, 32): AdamW on a cosine schedule, from its own seeded draws
    (its weights too), so a resumed run trains the same one. Channels-last, in bf16 where the
    hardware has it (`runtime.training_dtype`: an epoch 2.34x on a CPU with AMX). Returned frozen,
    in eval mode."""
    gen = seeded(seed, "latent-classifier")  # the stream's old name: the same judge as before
    with torch.random.fork_rng(devices=[]):  # its initial weights from its own seed alone
        torch.manual_seed(int(torch.randint(2**31, (1,), generator=gen)))
        model = PixelJudge(num_classes).to(device, memory_format=torch.channels_last)
    opt = adamw(model.parameters(), lr, weight_decay=1e-2)
    dtype = training_dtype(device, "judge")
    batch = min(batch, len(labels))
    steps_per_epoch = len(labels) // batch
    total = epochs * steps_per_epoch
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(labels), generator=gen)
        for i in range(steps_per_epoch):
            idx = order[i * batch : (i + 1) * batch]
            x = images[idx]
            # two draws that once noised the inputs (by 0 here): kept, they order later batches
            torch.rand(len(idx), generator=gen), torch.randn(x.shape, generator=gen)
            step = epoch * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            with autocast(device, dtype):
                logits = model(x.to(device).contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(logits.float(), labels[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval().requires_grad_(False)


@torch.inference_mode()
def accuracy(judge: nn.Module, images: torch.Tensor, labels: torch.Tensor, device) -> float:
    """The share of `images` the judge names as `labels`, in slices (a CNN's activations over
    10,000 digits at once took 300 MB)."""
    rows = ROWS["features"]
    named = torch.cat([judge(images[i : i + rows].to(device)).argmax(1).cpu()
                       for i in range(0, len(images), rows)])  # fmt: skip
    return float((named == labels.cpu()).float().mean())


def train_judge(
    num_classes: int,
    epochs: int,
    decode: Decode,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seed: int,
    device: torch.device,
    quiet: bool,
) -> nn.Module:
    """The judge of the decodings of the (standardised latents, labels) of `train`, saying how well
    it names those of `test`."""
    if not quiet:
        print(f"distill: training the judge ({epochs} epochs)", flush=True)
    judge = fit(decoded(decode, train[0], device), train[1], num_classes, epochs, seed, device)
    if not quiet:  # the training decodings are let go before the test's are made
        acc = accuracy(judge, decoded(decode, test[0], device), test[1], device)
        print(f"distill: the judge names {acc:.2%} of the test latents decoded", flush=True)
    return judge
