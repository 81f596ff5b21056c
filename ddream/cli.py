"""The `ddream` command line: parse options, call one stage function, turn errors into one line.

Options are declared once in `cli_options`, what is printed lives in `reports`; each command here
reads like its help. Exit codes: 0 ok, 1 failure, 2 bad input, 130 interrupted (143 on SIGTERM).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ddream import cli_options as o
from ddream import cli_settings as cs
from ddream.errors import BadInput
from ddream.reports import (
    eval_table,
    plots_line,
    reconstruct_lines,
    sample_line,
    stage_line,
    status_table,
)
from ddream.state import StateDir
from ddream.version import __version__

app = typer.Typer(
    name="ddream",
    help="Train and run a rectified-flow latent diffusion model for MNIST digits.\n\n"
    "Pipeline: train-ae -> encode -> train-dit -> distill -> sample; `ddream all` runs it and "
    "resumes it.\n\n"
    "Exit codes: 0 ok, 1 failure, 2 bad input, 130 interrupted (143 on SIGTERM).",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ddream {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks (or set DDREAM_DEBUG=1).")
    ] = False,
) -> None:
    """Train and run a rectified-flow latent diffusion model for MNIST digits."""
    if debug:
        os.environ["DDREAM_DEBUG"] = "1"


# ---- training stages ---------------------------------------------------------------------------
@app.command("train-ae")
def train_ae_cmd(
    ctx: typer.Context,
    config: o.ConfigOpt = None,
    profile: o.ProfileOpt = "reference",
    preset: o.PresetOpt = "default",
    data_dir: o.DataDirOpt = None,
    dataset: o.DatasetOpt = "mnist",
    epochs: o.AEEpochsOpt = None,
    finetune_epochs: o.FinetuneOpt = None,
    batch_size: o.BatchOpt = None,
    lr: o.LrOpt = None,
    latent_channels: o.LatentOpt = None,
    gan_weight: o.GanWeightOpt = None,
    gan_start: o.GanStartOpt = None,
    checkpoint_every: o.CkptOpt = None,
    tensorboard: o.TensorboardOpt = None,
    force: o.ForceOpt = False,
    state_dir: o.StateDirOpt = o.DEFAULT_STATE,
    device: o.DeviceOpt = "auto",
    seed: o.SeedOpt = 0,
    quiet: o.QuietOpt = False,
) -> None:
    """Train the F-16 autoencoder (augmented epochs, then fine-tune epochs), resuming if interrupted.

    Example: ddream train-ae --profile quick --data-dir ../shared/data/mnist
    """
    from ddream.stages.train_ae import train_ae

    prof = cs.settings(ctx)
    result = cs.run_training_command(
        ctx, "train-ae", state_dir, device, seed, prof.ae_train.batch_size, quiet,
        lambda state, dist: train_ae(
            state, prof.ae, prof.ae_train, data_dir=data_dir, dataset=dataset, device=dist.device,
            seed=seed, quiet=quiet, force=force, dist=dist, log=prof.log,
        ),
    )  # fmt: skip
    stage_line("train-ae", result, quiet)


@app.command("encode")
def encode_cmd(
    data_dir: o.DataDirOpt = None,
    force: o.ForceOpt = False,
    state_dir: o.StateDirOpt = o.DEFAULT_STATE,
    device: o.DeviceOpt = "auto",
    quiet: o.QuietOpt = False,
) -> None:
    """Encode both MNIST splits with the trained encoder into latents for train-dit.

    Example: ddream encode --data-dir ../shared/data/mnist
    """
    from ddream.stages.encode import encode

    dev = cs.device_for(device, 0)
    state = StateDir(state_dir)
    with cs.writing(state, "encode"):
        result = encode(state, data_dir=data_dir, device=dev, force=force)
    stage_line("encode", result, quiet)


@app.command("train-dit")
def train_dit_cmd(
    ctx: typer.Context,
    config: o.ConfigOpt = None,
    profile: o.ProfileOpt = "reference",
    preset: o.PresetOpt = "default",
    epochs: o.DiTEpochsOpt = None,
    batch_size: o.BatchOpt = None,
    lr: o.LrOpt = None,
    width: o.WidthOpt = None,
    depth: o.DepthOpt = None,
    patch_size: o.PatchOpt = None,
    ema_decay: o.EmaOpt = None,
    uniform_t_share: o.UniformOpt = None,
    checkpoint_every: o.CkptOpt = None,
    tensorboard: o.TensorboardOpt = None,
    force: o.ForceOpt = False,
    state_dir: o.StateDirOpt = o.DEFAULT_STATE,
    device: o.DeviceOpt = "auto",
    seed: o.SeedOpt = 0,
    quiet: o.QuietOpt = False,
) -> None:
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
        ),
    )  # fmt: skip
    stage_line("train-dit", result, quiet)


@app.command("distill")
def distill_cmd(
    ctx: typer.Context,
    config: o.ConfigOpt = None,
    profile: o.ProfileOpt = "reference",
    preset: o.PresetOpt = "default",
    epochs: o.DistillEpochsOpt = None,
    pairs: o.PairsOpt = None,
    teacher_steps: o.TeacherStepsOpt = None,
    lr: o.LrOpt = None,
    checkpoint_every: o.CkptOpt = None,
    tensorboard: o.TensorboardOpt = None,
    force: o.ForceOpt = False,
    state_dir: o.StateDirOpt = o.DEFAULT_STATE,
    device: o.DeviceOpt = "auto",
    seed: o.SeedOpt = 0,
    quiet: o.QuietOpt = False,
) -> None:
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
    state = StateDir(state_dir)
    with cs.writing(state, "distill", ctx):
        result = distill(
            state, prof.distill, device=dev, seed=seed, quiet=quiet, force=force, log=prof.log
        )
    stage_line("distill", result, quiet)


# ---- using the models ---------------------------------------------------------------------------
@app.command("sample")
def sample_cmd(
    ctx: typer.Context,
    config: o.ConfigOpt = None,
    n: o.CountOpt = None,
    classes: o.ClassesOpt = None,
    model: o.ModelOpt = "auto",
    steps: o.StepsOpt = None,
    cfg: o.CfgOpt = None,
    cfg_interval: o.IntervalOpt = None,
    solver: o.SolverOpt = None,
    dtype: o.DtypeOpt = "auto",
    grid: o.GridOpt = None,
    gif: o.GifOpt = None,
    npz: o.NpzOpt = None,
    scale: o.ScaleOpt = None,
    labels: o.LabelsOpt = None,
    interpolate: o.InterpolateOpt = None,
    between: o.BetweenOpt = "classes",
    frames: o.FramesOpt = 16,
    as_json: o.JsonOpt = False,
    state_dir: o.StateDirOpt = o.DEFAULT_STATE,
    device: o.DeviceOpt = "auto",
    seed: o.SeedOpt = 0,
    quiet: o.QuietOpt = False,
) -> None:
    """Draw new digits with the trained model and decoder.

    A morph: ddream sample --interpolate 3 8 --gif morph.gif

    Example: ddream sample -c 3 -c 8 --n 20 --gif out.gif
    """
    from ddream.sampler import SampleRequest
    from ddream.stages.sample import morph, sample

    table = cs.sample_table(ctx)  # a --config file's [sample] o.settings, under the flags
    paths = cs.sample_outputs(interpolate, between, labels, grid, gif, npz)
    req = SampleRequest(
        n=n if n is not None else (10 if interpolate is not None else 100),
        classes=tuple(classes) if classes else tuple(range(10)),
        steps=steps if steps is not None else table.get("steps"),
        cfg=cs.finite(cfg, "--cfg") if cfg is not None else table.get("cfg"),
        solver=solver if solver is not None else table.get("solver"),
        seed=seed,
        model=model,
        cfg_interval=cs.interval(cfg_interval) or table.get("cfg_interval"),
        dtype=dtype,
    )
    dev = cs.device_for(device, seed)
    state = StateDir(state_dir)
    if interpolate is not None:
        start, end = interpolate
        result = morph(
            state, req, start, end, between=between, frames=frames, device=dev,
            gif_path=paths["gif"], grid_path=paths["grid"], scale=scale or 1,
        )  # fmt: skip
        line = (
            f"morphed {between} {start} -> {end} in {frames} frames: {', '.join(result['written'])}"
        )
    else:
        result = sample(
            state, req, device=dev, grid_path=paths["grid"], gif_path=paths["gif"],
            npz_path=paths["npz"], scale=scale or 1, labels_on=labels is not False,
        )  # fmt: skip
        line = sample_line(result)
    if as_json:
        typer.echo(json.dumps(result))
    elif not quiet:
        typer.echo(line)


@app.command("reconstruct")
def reconstruct_cmd(
    images: o.ImagesArg = None,
    test: o.TestOpt = None,
    out: o.OutOpt = None,
    invert: o.InvertOpt = None,
    scale: o.ScaleOpt = None,
    data_dir: o.DataDirOpt = None,
    state_dir: o.StateDirOpt = o.DEFAULT_STATE,
    device: o.DeviceOpt = "auto",
    quiet: o.QuietOpt = False,
) -> None:
    """Encode and decode digit images and write each beside its reconstruction, with PSNR.

    Reconstruction always uses the autoencoder's own decoder (sampling may use a distilled one).

    Example: ddream reconstruct my_digit.png
    """
    from ddream.stages.reconstruct import reconstruct_files, reconstruct_test

    if not images and test is None:
        raise BadInput("give image files, or --test N")
    if images and test is not None:
        raise BadInput("give image files or --test N, not both")
    dev = cs.device_for(device, 0)
    state = StateDir(state_dir)
    if test is not None:
        results = reconstruct_test(
            state, test, out=out or Path("reconstructions.png"), data_dir=data_dir, device=dev,
            scale=scale or 2,
        )  # fmt: skip
    else:
        results = reconstruct_files(
            state, images, out=out, invert=invert, device=dev, scale=scale or 4
        )
    if not quiet:
        typer.echo(reconstruct_lines(results))


@app.command("eval")
def eval_cmd(
    n: o.EvalCountOpt = 10_000,
    model: o.ModelOpt = "auto",
    steps: o.StepsOpt = None,
    cfg: o.CfgOpt = None,
    cfg_interval: o.IntervalOpt = None,
    solver: o.SolverOpt = None,
    dtype: o.DtypeOpt = "auto",
    data_dir: o.DataDirOpt = None,
    as_json: o.JsonOpt = False,
    state_dir: o.StateDirOpt = o.DEFAULT_STATE,
    device: o.DeviceOpt = "auto",
    seed: o.SeedOpt = 0,
    quiet: o.QuietOpt = False,
) -> None:
    """Measure reconstruction (PSNR, SSIM, FID) and generation (FID, class accuracy, precision,
    recall).

    Generation is scored on the features of a digit classifier trained once and cached in the
    state dir; the real-data floor (held-out real digits) is printed beside. The report is kept in
    the state dir (eval/report.json) for `ddream serve`'s Model tab.

    Example: ddream eval --data-dir ../shared/data/mnist --json
    """
    from ddream.sampler import SampleRequest
    from ddream.stages.evaluate import evaluate

    req = SampleRequest(
        n=n, steps=steps, cfg=cs.finite(cfg, "--cfg"), solver=solver, seed=seed, model=model,
        cfg_interval=cs.interval(cfg_interval), dtype=dtype,
    )  # fmt: skip
    dev = cs.device_for(device, seed)
    result = evaluate(
        StateDir(state_dir), req, data_dir=data_dir, device=dev, say=cs.say(quiet or as_json)
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        eval_table(state_dir, result)


# ---- the pipeline ----------------------------------------------------------------------------------
@app.command("all")
def all_cmd(
    ctx: typer.Context,
    config: o.ConfigOpt = None,
    profile: o.ProfileOpt = "reference",
    preset: o.PresetOpt = "default",
    data_dir: o.DataDirOpt = None,
    dataset: o.DatasetOpt = "mnist",
    ae_epochs: o.PipelineAEEpochsOpt = None,
    finetune_epochs: o.FinetuneOpt = None,
    dit_epochs: o.PipelineDiTEpochsOpt = None,
    distill_epochs: o.PipelineDistillEpochsOpt = None,
    latent_channels: o.LatentOpt = None,
    checkpoint_every: o.CkptOpt = None,
    tensorboard: o.TensorboardOpt = None,
    state_dir: o.StateDirOpt = o.DEFAULT_STATE,
    device: o.DeviceOpt = "auto",
    seed: o.SeedOpt = 0,
    quiet: o.QuietOpt = False,
) -> None:
    """Run train-ae -> encode -> train-dit -> distill -> samples (state dir: samples.png, .gif).

    Each stage is skipped when done and fresh, resumed when interrupted, redone when stale.

    Example: ddream all --profile quick --data-dir ../shared/data/mnist
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


@app.command("plot")
def plot_cmd(out: o.PlotOutOpt = None, state_dir: o.StateDirOpt = o.DEFAULT_STATE) -> None:
    """Draw how the run learned: curves.png (each stage's loss and held-out metrics by epoch, the
    autoencoder's phases shaded, wall time on top; the plot extra: matplotlib), a GIF per stage of
    its fixed-noise snapshots, epoch by epoch, and report.html (all of it on one page, with the
    best epochs, the last eval and the settings).

    Example: ddream plot --out run-pictures   (then open run-pictures/curves.png)
    """
    from ddream.plots import PLOTS, plot
    from ddream.render import check_folder

    if not Path(state_dir).is_dir():
        raise BadInput(
            f"no state dir at {state_dir}: run `ddream all` first, or name one with --state-dir"
        )
    target = check_folder(out if out is not None else Path(state_dir) / PLOTS, "--out")
    plots_line(plot(StateDir(state_dir), target))


@app.command("config")
def config_cmd(
    ctx: typer.Context,
    config: o.ConfigOpt = None,
    profile: o.ProfileOpt = "reference",
    preset: o.PresetOpt = "default",
    state_dir: o.StateDirOpt = o.DEFAULT_STATE,
) -> None:
    """Print every setting as TOML tables that --config reads back: what the state dir's finished
    stages were trained with, and the profile's (with --config applied) for the rest.

    Example: ddream config --profile quick > run.toml  (edit it, then: ddream all --config run.toml)
    """
    from ddream.config_file import to_toml
    from ddream.status import recorded_profile

    prof, recorded = recorded_profile(StateDir(state_dir), cs.settings(ctx))
    source = f"profile {profile}, preset {preset}" + (f", {config}" if config else "")
    header = f"ddream {__version__} settings: {source}"
    if recorded:
        header += f"\n[{'], ['.join(recorded)}] as trained in {state_dir}"
    typer.echo(to_toml(prof, header), nl=False)


@app.command("status")
def status_cmd(as_json: o.JsonOpt = False, state_dir: o.StateDirOpt = o.DEFAULT_STATE) -> None:
    """Show each stage: done / partial / stale / missing / corrupt, metrics, sizes, wall time.

    Example: ddream status --state-dir ddream-state
    """
    from ddream.status import next_command, status_rows

    state = StateDir(state_dir)
    rows = status_rows(state)
    nxt, run = (None if state.exported else next_command(rows)), state.read().get("run")
    if as_json:
        stages = [r.__dict__ for r in rows]
        report = {"state_dir": str(state_dir), "next": nxt, "stages": stages, "run": run}
        typer.echo(json.dumps(report, indent=2))
    else:
        status_table(state_dir, rows, nxt, run, state.exported)


@app.command("export")
def export_cmd(
    out: o.ExportOutArg,
    onnx: o.OnnxOpt = False,
    force: o.ReplaceOpt = False,
    data_dir: o.ExportDataDirOpt = None,
    state_dir: o.StateDirOpt = o.DEFAULT_STATE,
    device: o.DeviceOpt = "auto",
    seed: o.SeedOpt = 0,
    quiet: o.QuietOpt = False,
) -> None:
    """Write the model as a folder: weights, config.json, a model card (README.md, for the Hugging
    Face Hub), pictures, a manifest of sha256s; ONNX graphs with --onnx. Reading commands and
    ddream.load() take it as they take a state dir.

    Example: ddream export my-digits --onnx   (then: ddream sample --state-dir my-digits)
    """
    from ddream.stages.export import export

    dev = cs.device_for(device, seed)
    result = export(
        StateDir(state_dir), out, onnx=onnx, force=force, data_dir=data_dir, device=dev,
        seed=seed, say=cs.say(quiet),
    )  # fmt: skip
    if not quiet:
        typer.echo(f"exported {state_dir} to {result['out']}: {', '.join(result['files'])}")


@app.command("serve")
def serve_cmd(
    port: o.PortOpt = 7860,
    host: o.HostOpt = "127.0.0.1",
    state_dir: o.StateDirOpt = o.DEFAULT_STATE,
    device: o.DeviceOpt = "auto",
    quiet: o.QuietOpt = False,
) -> None:
    """Open a local demo page: generate digits, draw one and see it reconstructed, morph, and
    what `ddream status` and the last `ddream eval` know. Needs the serve extra (Gradio).

    The models are loaded once, read-only; nothing is written into the state dir.

    Example: ddream serve --state-dir ddream-state   # then open http://127.0.0.1:7860
    """
    from ddream.page import LOCAL_HOSTS, import_gradio, run_page

    import_gradio()  # one line on how to install it, before any model is loaded
    if host not in LOCAL_HOSTS:
        warning = f"--host {host}: the page (and your model) is reachable from the network"
        typer.echo(f"warning: {warning}", err=True)
    from ddream.demo import Demo

    demo = Demo(state_dir, cs.device_for(device, 0))
    try:
        if not quiet:
            typer.echo(f"ddream serve: {state_dir} on http://{host}:{port} (Ctrl-C stops it)")
        run_page(demo, host, port, quiet=quiet)
    finally:
        demo.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; known errors become one line on stderr and an exit code."""
    from ddream.reports import run_cli

    run_cli(app, sys.argv[1:] if argv is None else argv)
