"""The commands that use the models and look after the state dir: `sample`, `reconstruct`, `eval`,
`plot`, `config`, `status`, `export` and `serve`, each reading like its help."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ddream import cli_options as o
from ddream import cli_settings as cs
from ddream.cli_app import app, shared
from ddream.errors import BadInput
from ddream.reports import (
    eval_table,
    plots_line,
    reconstruct_lines,
    sample_line,
    status_table,
)
from ddream.state import StateDir
from ddream.version import __version__


@app.command("sample")
@shared
def sample_cmd(
    ctx: typer.Context,
    *,
    config,
    n: o.CountOpt = None,
    classes: o.ClassesOpt = None,
    model, steps, cfg, cfg_interval, solver, dtype,
    grid: o.GridOpt = None,
    gif: o.GifOpt = None,
    npz: o.NpzOpt = None,
    scale,
    labels: o.LabelsOpt = None,
    interpolate: o.InterpolateOpt = None,
    between: o.BetweenOpt = "classes",
    frames: o.FramesOpt = 16,
    as_json, state_dir, device, seed, quiet,
) -> None:  # fmt: skip
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
@shared
def reconstruct_cmd(
    *,
    images: o.ImagesArg = None,
    test: o.TestOpt = None,
    out: o.OutOpt = None,
    invert: o.InvertOpt = None,
    scale, data_dir, state_dir, device, quiet,
) -> None:  # fmt: skip
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
@shared
def eval_cmd(
    *,
    n: o.EvalCountOpt = 10_000,
    model, steps, cfg, cfg_interval, solver, dtype, data_dir, as_json, state_dir, device, seed, quiet,
) -> None:  # fmt: skip
    """Measure reconstruction (PSNR, SSIM, FID) and generation (FID, class accuracy, precision,
    recall).

    Generation is scored on the features of a digit classifier trained once and cached in the
    state dir; the real-data floor (held-out real digits) is printed beside. The report is kept in
    the state dir (eval/report.json) for `ddream serve`'s Model tab.

    Example: ddream eval --data-dir DIR --json
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
@app.command("plot")
@shared
def plot_cmd(
    *,
    out: o.PlotOutOpt = None,
    state_dir,
) -> None:  # fmt: skip
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
@shared
def config_cmd(
    ctx: typer.Context,
    *,
    config, profile, preset, state_dir,
) -> None:  # fmt: skip
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
@shared
def status_cmd(
    *,
    as_json, state_dir,
) -> None:  # fmt: skip
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
@shared
def export_cmd(
    *,
    out: o.ExportOutArg,
    onnx: o.OnnxOpt = False,
    force: o.ReplaceOpt = False,
    data_dir: o.ExportDataDirOpt = None,
    state_dir, device, seed, quiet,
) -> None:  # fmt: skip
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
@shared
def serve_cmd(
    *,
    port: o.PortOpt = 7860,
    host: o.HostOpt = "127.0.0.1",
    state_dir, device, quiet,
) -> None:  # fmt: skip
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
