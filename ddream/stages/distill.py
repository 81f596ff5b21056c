"""`ddream distill`: the trained models made fast for sampling. This module owns the stage: its
settings as its record keeps them, what it loads, the teacher's pairs it draws (pairs.py), the judge
it trains (judge.py), the task it trains (student.py) and the files it writes.

- **Student**: the guided teacher (the DiT with classifier-free guidance for t in the interval and
  autoguidance by its own early weights, models/dit.py AutoGuided; integrated with Heun) turns
  (noise, class) into latents, each pair at its own guidance scale w over `cfg_range`; a copy of the
  DiT with w as an input learns to land on the teacher's latent in one step from t = 1 (Luhman &
  Luhman's knowledge distillation, one round of reflow at t = 1), with the class term and
  distribution matching beside it (student.py).
- **Decoder** (`decoder_widths`, `decoder_blocks`; on by default): a cheaper DC-AE decoder that
  imitates the autoencoder's decoder on latents, so the DiT, the student and the encoder stay
  valid. Sampling uses it; `reconstruct` keeps the autoencoder's.

The pairs are drawn once per (teacher, teacher settings) and kept beside the resume checkpoint, so a
resumed run trains on the same pairs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ddream.artifacts import load_ae, load_dit, load_guide, load_latents
from ddream.config import (
    REMOVED,
    RENAMED,
    DistillConfig,
    LogConfig,
    fingerprint,
    to_dict,
)
from ddream.config_rules import validate
from ddream.judge import train_judge
from ddream.models.autoencoder import Decoder, decoder_config, warm_start
from ddream.models.dit import AutoGuided, DiT
from ddream.models.fused_decoder import inference_decoder
from ddream.pairs import load_or_draw_pairs, noise_and_classes, pairs_key
from ddream.runtime import autocast
from ddream.stages.record import PipelineRun, StageRun
from ddream.state import StateDir
from ddream.student import DistillTask
from ddream.watch import latent_decoder

STAGE = "distill"
VALIDATION_DIGITS = 1000
# The record keeps the settings in their former names and the removed ones at their last value
# (config.RENAMED, config.REMOVED), so that students trained before stay fresh.
RECORD_NAMES = {new: old for old, new in RENAMED["distill"].items()}
# settings added after students were released, each group under the switches that turn it on: while
# one is off they stay out of the record's settings, so those students stay fresh (record names)
LATER_SETTINGS = {
    ("teacher_classifier_guidance",): ("teacher_classifier_guidance", "classifier_epochs"),
    ("dmd",): ("dmd", "dmd_start", "dmd_t", "dmd_rows"),
    ("classifier_loss",): ("classifier_loss", "classifier_epochs"),
    ("classifier_loss", "classifier_rows"): ("classifier_rows", "pixel_classifier_epochs"),
}


def recorded_settings(cfg: DistillConfig) -> dict[str, Any]:
    """The settings as the stage's record keeps them (and its fingerprint reads them)."""
    settings = {
        **REMOVED["distill"],
        **{RECORD_NAMES.get(k, k): v for k, v in to_dict(cfg).items()},
    }
    on = {
        key
        for switches, keys in LATER_SETTINGS.items()
        if all(settings[switch] for switch in switches)
        for key in keys
    }
    for key in {key for keys in LATER_SETTINGS.values() for key in keys} - on:
        settings.pop(key)
    return settings


def distill(
    state: StateDir,
    cfg: DistillConfig,
    *,
    device: torch.device,
    seed: int,
    quiet: bool,
    force: bool = False,
    discard_stale: bool = False,
    keep_pairs: bool = False,
    log: LogConfig | None = None,
) -> dict[str, Any]:
    """Distil (or resume, or skip when done and fresh) the student and the small decoder."""
    validate(cfg)
    if cfg.dmd and not cfg.cfg_range:  # DMD matches along the dial: guidance baked in skips it
        cfg = dataclasses.replace(cfg, dmd=0.0)
    teacher, stats, teacher_sha = load_dit(state, device)
    guide = load_guide(state, device) if cfg.teacher_autoguidance != 1.0 else None
    autoguidance = cfg.teacher_autoguidance if guide is not None else 1.0
    # what draws the pairs: the DiT, guided by its early weights too when it has them
    drawer = teacher if guide is None else AutoGuided(teacher, guide, autoguidance)
    ae, ae_sha = load_ae(state, device)
    # the student's default scale, unless the settings name one: the teacher's own (its metadata)
    guidance = cfg.student_cfg or float(teacher.sample_defaults.get("cfg", 1.0))
    interval = tuple(
        cfg.teacher_cfg_interval or teacher.sample_defaults.get("cfg_interval", (0.0, 1.0))
    )
    dial = tuple(cfg.cfg_range) or None  # the guidance scales the student learns to take
    dec_cfg = decoder_config(ae.cfg, cfg)
    config = {
        "distill": recorded_settings(cfg),
        "guidance": guidance,
        "autoguidance": autoguidance,
        "interval": list(interval),
        "seed": seed,
        "method": "reflow",
    }
    inputs = {"config": fingerprint(config), "dit": teacher_sha, "ae": ae_sha}
    pairs_path = state.path("distill", "pairs.safetensors")
    student_meta = {
        "kind": "ddream-student",
        "config": to_dict(teacher.cfg),
        "teacher_sha256": teacher_sha,
        "ae_sha256": ae_sha,
        "method": "one-step distillation (t = 1)"
        + (f", distribution matching {cfg.dmd}" if cfg.dmd else "")
        + (f", class term {cfg.class_term} in pixels" if cfg.class_term else ""),
        "teacher_sampler": (
            f"{cfg.teacher_solver} {cfg.teacher_steps} steps, cfg "
            f"{guidance if dial is None else f'{dial[0]} to {dial[1]}'} for t in "
            f"[{interval[0]}, {interval[1]}]"
            + (f", autoguidance {autoguidance}" if autoguidance != 1.0 else "")
        ),
        "cfg": guidance,
        **({} if dial is None else {"cfg_range": list(dial)}),
        "steps": 1,
        "latent_mean": stats.mean.tolist(),
        "latent_std": stats.std.tolist(),
    }

    def make_task() -> DistillTask:
        train_latents, _ = load_latents(state, "train")
        test_latents, _ = load_latents(state, "test")

        fast = inference_decoder(ae.decoder, device)  # the same pixels within 1e-5, ~1.3x faster

        def decode(z: torch.Tensor) -> torch.Tensor:
            with autocast(device):
                return fast(stats.unstandardise(z))

        judged = cfg.train_limit or len(train_latents.labels)  # quick: a slice, in seconds
        judge = train_judge(
            teacher.cfg.num_classes, cfg.judge_epochs, decode,
            (stats.standardise(train_latents.latents[:judged]), train_latents.labels[:judged]),
            (stats.standardise(test_latents.latents), test_latents.labels),
            seed, device, quiet,
        )  # fmt: skip
        scales = guidance if dial is None else dial
        key = pairs_key(teacher_sha, cfg, scales, (*interval, autoguidance), seed)
        pairs = load_or_draw_pairs(
            pairs_path, drawer, cfg, (scales, interval), seed, key, device, quiet
        )
        noise, labels = noise_and_classes(teacher, VALIDATION_DIGITS, seed, "validation")
        n = min(cfg.train_limit or len(pairs["labels"]), len(pairs["labels"]))
        pairs = {k: v[:n].to(device) for k, v in pairs.items()}
        torch.manual_seed(seed)
        student = DiT.started_from(teacher, dial is not None, device)  # reflow starts there
        decoder = None
        if dec_cfg is not None:
            decoder = Decoder(dec_cfg).to(device)
            warm_start(decoder, ae.decoder)
        return DistillTask(
            student=student,
            decoder=decoder,
            teacher_decoder=fast if decoder is not None else None,
            stats=stats,
            cfg=cfg,
            pairs=pairs,
            val={"noise": noise.to(device), "labels": labels.to(device)},
            extra_latents=stats.standardise(train_latents.latents).to(device),
            test_latents=stats.standardise(test_latents.latents[:2000]).to(device),
            device=device,
            seed=seed,
            default_cfg=guidance,
            pixel_decoder=ae.decoder.requires_grad_(False),
            judge=judge,
            teacher=teacher,
            real=drawer,
            interval=interval,
            decode=latent_decoder(ae, stats.unstandardise, device)
            if log is None or log.snapshots
            else None,
        )

    def files(task: DistillTask, result) -> tuple[dict, dict]:
        out = {"model": (state.output_path(STAGE, "model"), task.ema.shadow, student_meta)}
        if task.decoder is not None:
            last = result.history[-1] if result.history else {}
            out["decoder"] = (
                state.output_path(STAGE, "decoder"),
                task.decoder.state_dict(),
                {
                    "kind": "ddream-decoder",
                    "config": to_dict(dec_cfg),
                    "ae_sha256": ae_sha,
                    "psnr_vs_ae": last.get("decoder_psnr"),
                },
            )
        return out, {"teacher_sha256": teacher_sha}

    run = StageRun(state, STAGE, "distill", seed, quiet, force, discard_stale, log=log)
    done = run.train(config, inputs, cfg.epochs, cfg.checkpoint_every, make_task, files)
    if not keep_pairs:
        pairs_path.unlink(missing_ok=True)
    return done


def run_stage(run: PipelineRun) -> dict[str, Any]:
    """The student as `ddream all` distils it."""
    return distill(
        run.state, run.profile.distill, device=run.device, seed=run.seed, quiet=run.quiet,
        discard_stale=True, log=run.profile.log,
    )  # fmt: skip
