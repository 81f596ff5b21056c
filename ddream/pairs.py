"""The teacher's side of distillation: drawing (noise, class) -> latent pairs with the guided DiT,
caching them for a resumed run, the latent classifier that guides it, and the timestep
distributions a student trains on."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ddream.checkpoint import load_tensors, save_tensors
from ddream.config import CHOICES, DistillConfig, fingerprint
from ddream.flow import guided_velocity, sample_ode
from ddream.models.dit import DiT
from ddream.models.latent_classifier import LatentClassifier, PixelClassifier
from ddream.runtime import ROWS, autocast, rows_per_call, seeded, training_dtype
from ddream.train import adamw


def sample_t_ushape(n: int, gen: torch.Generator, a: float = 4.0) -> torch.Tensor:
    """t in [0, 1] with density ~ exp(-a t) + exp(-a (1 - t)): most mass near 0 and 1 (Lee et al.
    2024's U-shaped schedule for reflow)."""
    u = torch.rand(n, generator=gen)
    s = -torch.log1p(-u * (1 - torch.exp(torch.tensor(-a)))) / a  # truncated Exp(a) on [0, 1]
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip, 1 - s, s)


T_DISTS = CHOICES["t_dist"]  # one (t = 1 only), ushape (reflow's U-shaped t)


def distill_t(name: str, n: int, gen: torch.Generator) -> torch.Tensor:
    if name == "ushape":
        return sample_t_ushape(n, gen)
    return torch.ones(n)  # "one": direct distillation of the one-step map only


@torch.inference_mode()
def teacher_pairs(
    teacher: DiT,
    n: int,
    cfg: DistillConfig,
    guidance: float | tuple[float, float],
    seed: int,
    tag: str,
    device: torch.device,
    progress: Any = None,
    batch: int = ROWS["draw"],
    interval: tuple[float, float] | None = None,
) -> dict[str, torch.Tensor]:
    """Noise, balanced classes, and the latents that the guided teacher draws from them (guidance
    applied for t in `interval` only, when one is given). `guidance` is one scale, or a range
    (LO, HI): then each pair gets its own scale, spread evenly over the range (a stratified draw),
    kept as "cfg"."""
    shape = (teacher.cfg.latent_channels, teacher.cfg.latent_size, teacher.cfg.latent_size)
    noise = torch.randn((n, *shape), generator=seeded(seed, "distill", tag))
    labels = torch.arange(n) % teacher.cfg.num_classes
    labels = labels[torch.randperm(n, generator=seeded(seed, "distill-labels", tag))]
    scales = None
    if isinstance(guidance, tuple):
        lo, hi = guidance
        u = (torch.arange(n) + torch.rand(n, generator=seeded(seed, "distill-cfg", tag))) / n
        scales = lo + (hi - lo) * u[torch.randperm(n, generator=seeded(seed, "distill-w", tag))]
    out = []
    for i in range(0, n, batch):
        y = labels[i : i + batch].to(device)
        w = guidance if scales is None else scales[i : i + batch].to(device)
        # the whole batch in one call, computing as training does
        cast = lambda: autocast(device, training_dtype(device, "teacher pairs"))  # noqa: E731  (pairs train the student)
        velocity = guided_velocity(teacher, y, w, interval, len(y), cast)

        z, _ = sample_ode(
            velocity, noise[i : i + batch].to(device), cfg.teacher_steps, cfg.teacher_solver
        )
        out.append(z.cpu())
        if progress is not None:
            progress(min(i + batch, n), n)
    pairs = {"noise": noise, "latents": torch.cat(out), "labels": labels}
    return pairs if scales is None else {**pairs, "cfg": scales}


def train_latent_classifier(
    latents: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    epochs: int,
    seed: int,
    device: torch.device,
    noise: float = 0.3,
    batch: int = 256,
    lr: float = 1e-3,
    make: Callable[[], nn.Module] | None = None,
) -> nn.Module:
    """The teacher's classifier of (standardised) training latents, from its own seeded draws:
    AdamW on a cosine schedule, each latent with Gaussian noise of a random strength up to `noise`
    (the denoised estimates it will judge are not quite clean). Returned frozen, in eval mode.
    `make` builds another model for other inputs of the same classes (the pixel classifier's
    decoded digits)."""
    gen = seeded(seed, "latent-classifier")
    with torch.random.fork_rng(devices=[]):  # its initial weights from its own seed alone
        torch.manual_seed(int(torch.randint(2**31, (1,), generator=gen)))
        model = (make or (lambda: LatentClassifier(latents[0].numel(), num_classes)))()
        model = model.to(device)
    opt = adamw(model.parameters(), lr, weight_decay=1e-2)
    batch = min(batch, len(labels))
    steps_per_epoch = len(labels) // batch
    total = epochs * steps_per_epoch
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(labels), generator=gen)
        for i in range(steps_per_epoch):
            idx = order[i * batch : (i + 1) * batch]
            x = latents[idx]
            strength = torch.rand(len(idx), *[1] * (x.dim() - 1), generator=gen) * noise
            x = (x + strength * torch.randn(x.shape, generator=gen)).to(device)
            step = epoch * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(model(x), labels[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval().requires_grad_(False)


def latent_classifier(
    num_classes: int,
    epochs: int,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seed: int,
    device: torch.device,
    quiet: bool,
) -> LatentClassifier:
    """The distill stage's latent classifier (for classifier guidance and the student's class
    term): trained on the (standardised latents, labels) of `train` (seeded, so a resumed run
    trains the same), saying how well it names those of `test`."""
    if not quiet:
        print(f"distill: training the latent classifier ({epochs} epochs)", flush=True)
    classifier = train_latent_classifier(*train, num_classes, epochs, seed, device)
    if not quiet:
        say_accuracy(classifier, *test, "latent classifier", "the test latents", device)
    return classifier


def say_accuracy(
    classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str, what: str, device
) -> None:
    """One line: how many of `what` (inputs x, classes y) the classifier names right."""
    with torch.inference_mode():  # in slices: a CNN's activations over 10,000 digits took 300 MB
        rows = ROWS["features"]
        hits = torch.cat([classifier(x[i : i + rows].to(device)).argmax(1).cpu()
                          for i in range(0, len(x), rows)]) == y  # fmt: skip
    print(f"distill: {name} {hits.float().mean():.2%} on {what}", flush=True)


def pixel_classifier(
    num_classes: int,
    epochs: int,
    decode: Callable[[torch.Tensor], torch.Tensor],
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seed: int,
    device: torch.device,
    quiet: bool,
) -> nn.Module:
    """The class term's judge in pixels: a small CNN trained on the frozen autoencoder's decodings
    of the (standardised) training latents `train`, the digits the student's own are decoded like,
    saying how well it names the decodings of `test`."""

    def decoded(z: torch.Tensor) -> torch.Tensor:
        """The decodings, written slice by slice into one tensor (a list of slices and their
        concatenation held the 60,000 digits twice: 245 MB more at the stage's peak)."""
        out, rows = None, rows_per_call("decoder", device)  # 256 on a CPU: faster, and smaller
        with torch.no_grad():  # not inference mode: the result is training data
            for i in range(0, len(z), rows):
                part = decode(z[i : i + rows].to(device)).float().cpu()
                if out is None:
                    out = torch.empty((len(z), *part.shape[1:]))
                out[i : i + len(part)] = part
        return out

    if not quiet:
        print(f"distill: training the pixel classifier ({epochs} epochs)", flush=True)
    classifier = train_latent_classifier(
        decoded(train[0]),
        train[1],
        num_classes,
        epochs,
        seed,
        device,
        noise=0.0,
        make=lambda: PixelClassifier(num_classes),
    )  # fmt: skip (the decodings are let go before the test's are made)
    if not quiet:
        say_accuracy(classifier, decoded(test[0]), test[1], "pixel classifier",
                     "the test latents decoded", device)  # fmt: skip
    return classifier


def pairs_key(
    teacher_sha: str, cfg: DistillConfig, guidance: float | tuple, interval: tuple, seed: int
) -> str:
    """What the teacher's pairs depend on: the teacher and how it samples, not how the student
    trains (so runs that differ only in training settings can share them)."""
    what = [teacher_sha, cfg.pairs, cfg.teacher_steps, cfg.teacher_solver, guidance, seed]
    what += list(interval)
    return fingerprint(what)


def load_or_draw_pairs(
    path: Path,
    teacher: DiT,
    cfg: DistillConfig,
    guidance: tuple[float | tuple[float, float], tuple],
    seed: int,
    key: str,
    device: torch.device,
    quiet: bool,
) -> dict[str, torch.Tensor]:
    """The teacher's pairs from an earlier (interrupted) run with the same key, or drawn now."""
    if path.exists():
        try:
            tensors, meta = load_tensors(path)
            if meta.get("key") == key:
                return tensors
        except Exception:  # a damaged cache is simply drawn again
            pass
    t0 = time.perf_counter()
    say = None if quiet else _pair_progress()
    guidance, interval = guidance
    pairs = teacher_pairs(
        teacher, cfg.pairs, cfg, guidance, seed, "train", device, say, interval=interval
    )
    save_tensors(path, pairs, {"key": key, "seconds": time.perf_counter() - t0})
    if not quiet:
        print(
            f"distill: {cfg.pairs} teacher pairs ({cfg.teacher_solver} {cfg.teacher_steps} steps, "
            f"cfg {guidance}) in {time.perf_counter() - t0:.1f}s",
            flush=True,
        )
    return pairs


def _pair_progress():
    last = [0.0]

    def say(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 5 or done == total:
            last[0] = now
            print(f"distill: teacher pairs {done}/{total}", flush=True)

    return say
