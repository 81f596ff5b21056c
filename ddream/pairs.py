"""The teacher's side of distillation: drawing (noise, class) -> latent pairs with the guided DiT,
and caching them beside the resume checkpoint so that a resumed run trains on the same pairs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ddream.checkpoint import load_tensors, save_tensors
from ddream.config import DistillConfig, fingerprint
from ddream.flow import guided_velocity, sample_ode
from ddream.models.dit import DiT
from ddream.runtime import ROWS, autocast, seeded, training_dtype


def noise_and_classes(
    teacher: DiT, n: int, seed: int, tag: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """n noises of the teacher's latent shape and n balanced classes in a seeded order, each from
    its own stream named by `tag` ("train", "validation")."""
    shape = (teacher.cfg.latent_channels, teacher.cfg.latent_size, teacher.cfg.latent_size)
    noise = torch.randn((n, *shape), generator=seeded(seed, "distill", tag))
    labels = torch.arange(n) % teacher.cfg.num_classes
    return noise, labels[torch.randperm(n, generator=seeded(seed, "distill-labels", tag))]


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
    noise, labels = noise_and_classes(teacher, n, seed, tag)
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
        cast = lambda: autocast(device, training_dtype(device, "teacher pairs"))  # noqa: E731
        velocity = guided_velocity(teacher, y, w, interval, len(y), cast)
        z, _ = sample_ode(
            velocity, noise[i : i + batch].to(device), cfg.teacher_steps, cfg.teacher_solver
        )
        out.append(z.cpu())
        if progress is not None:
            progress(min(i + batch, n), n)
    pairs = {"noise": noise, "latents": torch.cat(out), "labels": labels}
    return pairs if scales is None else {**pairs, "cfg": scales}


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
