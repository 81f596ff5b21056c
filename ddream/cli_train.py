"""The commands that make models: `train-ae`, `encode`, `train-dit`, `distill` and `all`, each
reading like its help, each calling one stage function."""

from __future__ import annotations

import typer

from ddream import cli_options as o
from ddream import cli_settings as cs
from ddream.cli_app import app, shared
from ddream.reports import (
    plots_line,
    stage_line,
)
from ddream.state import StateDir


# ---- training stages ---------------------------------------------------------------------------
@app.command("train-ae")
@shared
def train_ae_cmd(
    ctx: typer.Context,
    *,
    config, profile, preset, data_dir, dataset,
    epochs: o.AEEpochsOpt = None,
    finetune_epochs, batch_size, lr, latent_channels,
    gan_weight: o.GanWeightOpt = None,
    gan_start: o.GanStartOpt = None,
    checkpoint_every, tensorboard, force, state_dir, device, seed, quiet,
) -> None:  # fmt: skip
    """Train the F-16 autoencoder (augmented epochs, then fine-tune epochs), resuming if interrupted.

    Example: ddream train-ae --profile quick --data-dir DIR
    """
    from ddream.stages.train_ae import train_ae

    prof = cs.settings(ctx)
    result = cs.run_training_command(
        ctx, "train-ae", state_dir, device, seed, prof.ae_train.batch_size, quiet,
        lambda state, dist: train_ae(
            state, prof.ae, prof.ae_train, data_dir=data_dir, dataset=dataset, device=dist.device,
            seed=seed, quiet=quiet, force=force, dist=dist, log=prof.log,
        ), force,
    )  # fmt: skip
    stage_line("train-ae", result, quiet)


@app.command("encode")
@shared
def encode_cmd(
    *,
    data_dir, force, state_dir, device, quiet,
) -> None:  # fmt: skip
    """Encode both MNIST splits with the trained encoder into latents for train-dit.

    Example: ddream encode --data-dir DIR
    """
    from ddream.stages.encode import encode

    dev = cs.device_for(device, 0)
    state = StateDir(state_dir, redo="encode" if force else None)
    with cs.writing(state, "encode"):
        result = encode(state, data_dir=data_dir, device=dev, force=force)
    stage_line("encode", result, quiet)


@app.command("train-dit")
@shared
def train_dit_cmd(
    ctx: typer.Context,
    *,
    config, profile, preset,
    epochs: o.DiTEpochsOpt = None,
    batch_size, lr,
    width: o.WidthOpt = None,
    depth: o.DepthOpt = None,
    patch_size: o.PatchOpt = None,
    ema_decay: o.EmaOpt = None,
    uniform_t_share: o.UniformOpt = None,
    checkpoint_every, tensorboard, force, state_dir, device, seed, quiet,
) -> None:  # fmt: skip
    """Train the class-conditional DiT with rectified flow on the encoded latents.

    Example: ddream train-dit --epochs 10
    """
    from ddream.stages.train_dit import train_dit

    prof = cs.settings(ctx)
    result = cs.run_training_command(
        ctx, "train-dit", state_dir, device, seed, prof.dit_train.batch_size, quiet,
        lambda state, dist: train_dit(
            state, prof.dit, prof.dit_train, device=dist.device, seed=seed, quiet=quiet,
            sample_cfg=prof.sample, force=force, dist=dist, log=prof.log,
        ), force,
    )  # fmt: skip
    stage_line("train-dit", result, quiet)


@app.command("distill")
@shared
def distill_cmd(
    ctx: typer.Context,
    *,
    config, profile, preset,
    epochs: o.DistillEpochsOpt = None,
    pairs: o.PairsOpt = None,
    teacher_steps: o.TeacherStepsOpt = None,
    lr, checkpoint_every, tensorboard, force, state_dir, device, seed, quiet,
) -> None:  # fmt: skip
    """Distil the trained DiT into a student that draws a digit in one network pass.

    The guided teacher draws (noise, class) -> latent pairs (guided by its null class and by its own
    early weights, which train-dit keeps: autoguidance); the student, started from the teacher,
    learns to land on the teacher's digit in one step, with the guidance scale as an input (the
    pairs are drawn over [distill] cfg_range, 1 to 2 by default: `sample --cfg` turns it); a cheaper
    decoder (the autoencoder's without its 4x4 block) learns to imitate the autoencoder's. `ddream
    sample` then uses both; `--model teacher` keeps the DiT's ODE and the autoencoder's decoder.

    Example: ddream distill
    """
    from ddream.stages.distill import distill

    prof = cs.settings(ctx)
    dev = cs.device_for(device, seed)
    state = StateDir(state_dir, redo="distill" if force else None)
    with cs.writing(state, "distill", ctx):
        result = distill(
            state, prof.distill, device=dev, seed=seed, quiet=quiet, force=force, log=prof.log
        )
    stage_line("distill", result, quiet)


@app.command("all")
@shared
def all_cmd(
    ctx: typer.Context,
    *,
    config, profile, preset, data_dir, dataset,
    ae_epochs: o.PipelineAEEpochsOpt = None,
    finetune_epochs,
    dit_epochs: o.PipelineDiTEpochsOpt = None,
    distill_epochs: o.PipelineDistillEpochsOpt = None,
    latent_channels, checkpoint_every, tensorboard, state_dir, device, seed, quiet,
) -> None:  # fmt: skip
    """Run train-ae -> encode -> train-dit -> distill -> samples (state dir: samples.png, .gif).

    Each stage is skipped when done and fresh, resumed when interrupted, redone when stale.

    Example: ddream all --profile quick --data-dir DIR
    """
    from ddream.progress import Ledger
    from ddream.stages.pipeline import run_all

    prof = cs.settings(ctx)
    dev = cs.device_for(device, seed)
    state = StateDir(state_dir)
    with cs.writing(state, "all", ctx):
        summary = run_all(
            state, prof, data_dir=data_dir, dataset=dataset, device=dev, seed=seed, quiet=quiet,
            say=cs.say(quiet),
        )  # fmt: skip
    if not quiet:
        typer.echo(f"samples: {', '.join(summary['sample']['written'])}")
        plots_line(summary["plots"])
        typer.echo(Ledger.line(summary["seconds"], summary["seconds_detail"]))
