"""The settings' rules, in one place: the choices a text setting takes, and `validate`, which checks
every settings dataclass of config.py (ranges, shapes that must fit together) and raises BadInput
naming the setting."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ddream.config import (
    AEConfig,
    AETrainConfig,
    DistillConfig,
    DiTConfig,
    DiTTrainConfig,
    SampleConfig,
)

CHOICES: dict[str, tuple[str, ...]] = {
    "arch": ("dcae", "digitdreamer"),
    "io": ("shuffle", "conv"),
    "lr_schedule": ("cosine", "constant"),
    "recon_loss": ("l1+mse", "bce"),
    "gan_loss": ("hinge", "bce"),
    "solver": ("euler", "heun"),
    "teacher_solver": ("euler", "heun"),
    "loss": ("huber", "l2"),
    "gelu": ("exact", "tanh"),
}


def validate(cfg: Any) -> Any:
    """One place for every settings check; raises BadInput naming the setting, returns cfg."""

    from ddream.errors import BadInput

    name = type(cfg).__name__
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name in CHOICES and value not in CHOICES[f.name]:
            raise BadInput(f"{name}.{f.name} {value!r}: choose one of {', '.join(CHOICES[f.name])}")
        numbers = value if isinstance(value, tuple) else (value,)
        for v in numbers:
            if isinstance(v, float) and not math.isfinite(v):
                raise BadInput(f"{name}.{f.name} must be finite, not {v}")
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
                raise BadInput(f"{name}.{f.name} {value}: must not be negative")
    for rule in _RULES.get(type(cfg), ()):
        problem = rule(cfg)
        if problem:
            raise BadInput(f"{name}: {problem}")
    return cfg


def _ae_rule(cfg: AEConfig) -> str | None:
    w = cfg.widths
    if len(w) != 5 or len(cfg.blocks) != 5:
        return "an F-16 autoencoder needs 5 widths and 5 block counts (32, 16, 8, 4, 2 px)"
    if cfg.latent_channels < 1 or min(w) < 1:
        return "widths and latent channels must be at least 1"
    if cfg.arch == "digitdreamer":
        return (
            "digitdreamer widths after the first must be multiples of 4"
            if any(c % 4 for c in w[1:])
            else None
        )
    for a, b in zip(w, w[1:], strict=False):
        if b % 4 or (4 * a) % b or (4 * b) % a:
            return f"widths {a}->{b} do not fit the DC-AE shortcuts"
    if w[4] % cfg.latent_channels:
        return f"latent channels {cfg.latent_channels} must divide width {w[4]}"
    if cfg.io == "shuffle" and cfg.blocks[0]:
        return "io 'shuffle' has no 32x32 stage: blocks[0] must be 0 (or io 'conv')"
    return None


def _positive(*names: str):
    def rule(cfg: Any) -> str | None:
        bad = [n for n in names if getattr(cfg, n) <= 0]
        return f"{', '.join(bad)} must be above 0" if bad else None

    return rule


def _fraction(*names: str, closed: bool = False):
    def rule(cfg: Any) -> str | None:
        for n in names:
            v = getattr(cfg, n)
            if not (0 <= v <= 1 if closed else 0 <= v < 1):
                return f"{n} {v} must be in [0, 1{']' if closed else ')'}"
        return None

    return rule


_RULES: dict[type, tuple] = {
    AEConfig: (_ae_rule, _positive("disc_width")),
    AETrainConfig: (
        _positive("batch_size", "lr", "checkpoint_every"),
        lambda c: (
            "epochs plus finetune_epochs must be at least 1"
            if c.epochs + c.finetune_epochs < 1
            else None
        ),
        lambda c: "translate needs 2 values (x, y)" if len(c.translate) != 2 else None,
        lambda c: (
            "scale needs 2 values (low, high), low <= high"
            if len(c.scale) != 2 or c.scale[0] > c.scale[1]
            else None
        ),
    ),
    DiTConfig: (
        _positive("latent_channels", "latent_size", "patch_size", "width", "depth", "heads"),
        _positive("mlp_ratio", "num_classes"),
        _fraction("class_dropout"),
        lambda c: (
            f"width {c.width} must be a multiple of heads {c.heads}"
            if c.heads and c.width % c.heads
            else None
        ),
        lambda c: (
            f"patch_size {c.patch_size} must divide latent_size {c.latent_size}"
            if c.patch_size and c.latent_size % c.patch_size
            else None
        ),
    ),
    DiTTrainConfig: (
        _positive("epochs", "batch_size", "lr", "checkpoint_every"),
        _fraction("ema_decay"),
        _fraction("uniform_share", closed=True),
        _fraction("guide_share"),
    ),
    SampleConfig: (
        _positive("steps", "cfg"),
        lambda c: (
            "cfg_interval needs 0 <= LO <= HI <= 1"
            if len(c.cfg_interval) != 2 or not 0 <= c.cfg_interval[0] <= c.cfg_interval[1] <= 1
            else None
        ),
    ),
    DistillConfig: (
        _positive("pairs", "teacher_steps", "epochs", "batch_size", "lr", "decoder_lr"),
        _positive("teacher_autoguidance", "judge_epochs", "class_rows"),
        _positive("checkpoint_every", "decoder_every"),
        _fraction("ema_decay"),
        _fraction("dmd_start", closed=True),
        lambda c: (
            "dmd_t is (LO, HI) with 0 < LO < HI < 1"
            if len(c.dmd_t) != 2 or not 0 < c.dmd_t[0] < c.dmd_t[1] < 1
            else None
        ),
        lambda c: (
            "teacher_cfg_interval is () or (LO, HI) with 0 <= LO <= HI <= 1"
            if c.teacher_cfg_interval
            and (
                len(c.teacher_cfg_interval) != 2
                or not 0 <= c.teacher_cfg_interval[0] <= c.teacher_cfg_interval[1] <= 1
            )
            else None
        ),
        lambda c: (
            "cfg_range is () or (LO, HI) with 1 <= LO < HI, holding student_cfg"
            if c.cfg_range
            and (
                len(c.cfg_range) != 2
                or not 1 <= c.cfg_range[0] < c.cfg_range[1]
                or not c.cfg_range[0] <= (c.student_cfg or c.cfg_range[0]) <= c.cfg_range[1]
            )
            else None
        ),
        lambda c: (
            "decoder_widths is () or 5 widths; decoder_blocks 5 counts"
            if (c.decoder_widths and len(c.decoder_widths) != 5) or len(c.decoder_blocks) != 5
            else None
        ),
    ),
}
