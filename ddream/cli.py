"""The `ddream` command line: parse options, call one stage function, turn errors into one line.

Exit codes: 0 ok, 1 failure, 2 bad input, 130 interrupted (143 on SIGTERM).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ddream import __version__

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

# ---- options every command shares ---------------------------------------------------------------
StateDirOpt = Annotated[
    Path,
    typer.Option(
        "--state-dir",
        envvar="DDREAM_STATE_DIR",
        help="Experiment folder holding state.json and artifacts.",
    ),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps.")
]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Seed for every random draw; same seed, same result.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or chatter.")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder with MNIST in torchvision's layout (MNIST/raw/*-ubyte); default: "
        "download into the state dir.",
    ),
]
DatasetOpt = Annotated[
    str,
    typer.Option(
        "--dataset",
        help="mnist, fashion, kmnist, emnist-digits or qmnist (torchvision's MNIST-like sets).",
    ),
]
StepsOpt = Annotated[
    int | None,
    typer.Option(
        min=1, max=1000, help="ODE steps (default: the model's preset; ddream's: 2 Heun steps)."
    ),
]
CfgOpt = Annotated[
    float | None,
    typer.Option("--cfg", help="Classifier-free guidance scale, 1 = none (default: the preset's)."),
]
IntervalOpt = Annotated[
    tuple[float, float] | None,
    typer.Option(
        "--cfg-interval",
        help="Teacher only: guide only for t in [LO, HI] (t=1 is noise), the conditional velocity "
        "alone elsewhere (default: the model's).",
    ),
]
SolverOpt = Annotated[
    str | None, typer.Option(help="euler or heun (default: the model's preset; ddream's: heun).")
]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        help="auto (the distilled student when `ddream distill` has run, else the teacher), "
        "student (one network pass a digit, guidance baked in; 1-2 steps) or teacher (the DiT's "
        "guided ODE: --steps, --solver, --cfg).",
    ),
]
PresetOpt = Annotated[
    str,
    typer.Option(
        "--preset",
        help="default (ddream's recipe) or digitdreamer (the reference design's, for comparison).",
    ),
]
ProfileOpt = Annotated[
    str,
    typer.Option(
        "--profile",
        help="reference (the full schedule) or quick "
        "(a tiny model on a slice of the data, seconds on a CPU).",
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force", help="Start this stage afresh, dropping its record and resume checkpoint."
    ),
]
CkptOpt = Annotated[
    int | None,
    typer.Option(
        "--checkpoint-every",
        min=1,
        help="Steps between resume checkpoints (also at every epoch end).",
    ),
]

DEFAULT_STATE = Path("ddream-state")


def _load_config(ctx: typer.Context, value: Path | None) -> Path | None:
    """Eager: read a TOML file of option values into the command's defaults, so flags override it."""
    if value is None or ctx.resilient_parsing:
        return value
    from ddream.config import read_toml, split_tables
    from ddream.errors import BadInput

    known = {p.name for p in ctx.command.params} - {"config"}
    options = {}
    top, tables = split_tables(read_toml(value), f"--config {value}")
    ctx.meta["ddream_tables"] = (f"--config {value}", tables)
    for key, val in top.items():
        name = key.replace("-", "_")
        if name not in known:
            raise BadInput(
                f"{value}: `ddream {ctx.info_name}` has no option {key!r} "
                f"(it has: {', '.join(sorted(k.replace('_', '-') for k in known))})"
            )
        options[name] = val
    ctx.default_map = {**(ctx.default_map or {}), **options}
    return value


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        is_eager=True,
        callback=_load_config,
        help="TOML file: option values as top-level keys (the long options), and any setting in "
        "tables [ae] [ae_train] [dit] [dit_train] [sample] [distill] (see `ddream config`); "
        "flags given here override it.",
    ),
]


def _profile(ctx: typer.Context, profile: str, preset: str):
    """The preset at this profile's scale, with the --config file's tables applied and checked."""
    from ddream.config import apply_tables, get_profile

    source, tables = ctx.meta.get("ddream_tables", ("--config", {}))
    return apply_tables(get_profile(profile, preset), tables, source)


def _sample_table(ctx: typer.Context) -> dict:
    """The [sample] table of a --config file, checked; sampling flags left unset take it."""
    from ddream.config import Profile, apply_tables

    source, tables = ctx.meta.get("ddream_tables", ("--config", {}))
    if "sample" not in tables:
        return {}
    sample = apply_tables(Profile(name="file"), {"sample": tables["sample"]}, source).sample
    return {k: getattr(sample, k) for k in tables["sample"]}


def _checked(*configs):
    """Settings after the flags: validated in one place (ddream.config.validate)."""
    from ddream.config import validate

    return tuple(validate(c) for c in configs)


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


def _say(quiet: bool):
    def say(text: str) -> None:
        if not quiet:
            typer.echo(text)

    return say


def _setup(device: str, seed: int):
    """The torch device, chosen after the options parsed (torch is imported only for real work)."""
    import torch

    from ddream.distributed import world_size
    from ddream.train import pick_device

    if world_size() > 1:
        _bad(
            "under torchrun, run `ddream train-ae` or `ddream train-dit`; the other commands run alone"
        )
    torch.manual_seed(seed)
    return pick_device(device)


def _setup_training(device: str, seed: int, batch_size: int):
    """Device and process group for a training command: torchrun's, when it started this process."""
    import torch

    from ddream.distributed import init_from_env
    from ddream.train import pick_device

    torch.manual_seed(seed)
    return init_from_env(pick_device(device), (batch_size,))


def shutdown(dist, clean: bool) -> None:
    from ddream.distributed import shutdown as leave

    leave(dist, clean)


def _train_stage(
    ctx, command: str, state, device: str, seed: int, batch_size: int, quiet: bool, train
) -> None:
    """Run a training stage alone or as one rank under torchrun: rank 0 holds the state dir's lock,
    records the run's options and reports; every rank leaves the process group at the end."""
    import contextlib

    dist = _setup_training(device, seed, batch_size)
    try:
        with state.locked(command) if dist.main else contextlib.nullcontext():
            if dist.main:
                state.write_run(command, _options(ctx))
            result = train(state, dist)
    except BaseException:
        shutdown(dist, clean=False)
        raise
    shutdown(dist, clean=True)
    _report(command, result, quiet or not dist.main)


# ---- training stages ---------------------------------------------------------------------------
@app.command("train-ae")
def train_ae_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    profile: ProfileOpt = "reference",
    preset: PresetOpt = "default",
    data_dir: DataDirOpt = None,
    dataset: DatasetOpt = "mnist",
    epochs: Annotated[
        int | None, typer.Option(min=0, help="Augmented epochs (reference: 20).")
    ] = None,
    finetune_epochs: Annotated[
        int | None,
        typer.Option(min=0, help="Fine-tune epochs on the original digits (reference: 2)."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Images per step.")] = None,
    lr: Annotated[
        float | None, typer.Option(min=1e-9, help="Peak learning rate (cosine decay).")
    ] = None,
    latent_channels: Annotated[
        int | None,
        typer.Option(min=1, help="Channels of the 2x2 latent (must divide the last width, 64)."),
    ] = None,
    gan_weight: Annotated[
        float | None, typer.Option(min=0.0, help="Weight of the adversarial term (0 = off).")
    ] = None,
    gan_start: Annotated[
        int | None, typer.Option(min=0, help="Step at which the GAN term starts.")
    ] = None,
    checkpoint_every: CkptOpt = None,
    force: ForceOpt = False,
    state_dir: StateDirOpt = DEFAULT_STATE,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Train the F-16 autoencoder (augmented epochs, then fine-tune epochs), resuming if interrupted.

    Example: ddream train-ae --profile quick --data-dir ../shared/data/mnist
    """
    from ddream.config import with_overrides
    from ddream.stages.train_ae import train_ae
    from ddream.state import StateDir

    prof = _profile(ctx, profile, preset)
    _check_dataset(dataset)
    model_cfg, cfg = _checked(
        with_overrides(prof.ae, latent_channels=latent_channels),
        with_overrides(
            prof.ae_train,
            epochs=epochs,
            finetune_epochs=finetune_epochs,
            batch_size=batch_size,
            lr=lr,
            gan_weight=gan_weight,
            gan_start=gan_start,
            checkpoint_every=checkpoint_every,
        ),
    )
    _train_stage(
        ctx,
        "train-ae",
        StateDir(state_dir),
        device,
        seed,
        cfg.batch_size,
        quiet,
        lambda state, dist: train_ae(
            state,
            model_cfg,
            cfg,
            data_dir=data_dir,
            dataset=dataset,
            device=dist.device,
            seed=seed,
            quiet=quiet,
            force=force,
            dist=dist,
        ),
    )


@app.command("encode")
def encode_cmd(
    data_dir: DataDirOpt = None,
    force: ForceOpt = False,
    state_dir: StateDirOpt = DEFAULT_STATE,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Encode both MNIST splits with the trained encoder into latents for train-dit.

    Example: ddream encode --data-dir ../shared/data/mnist
    """
    from ddream.stages.encode import encode
    from ddream.state import StateDir

    dev = _setup(device, seed)
    state = StateDir(state_dir)
    with state.locked("encode"):
        result = encode(state, data_dir=data_dir, device=dev, quiet=quiet, force=force)
    _report("encode", result, quiet)


@app.command("train-dit")
def train_dit_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    profile: ProfileOpt = "reference",
    preset: PresetOpt = "default",
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Epochs over the training latents (reference: 10).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Latents per step.")] = None,
    lr: Annotated[
        float | None, typer.Option(min=1e-9, help="Peak learning rate (cosine decay).")
    ] = None,
    width: Annotated[int | None, typer.Option(min=8, help="Transformer width.")] = None,
    depth: Annotated[int | None, typer.Option(min=1, help="Number of DiT blocks.")] = None,
    patch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Patch size over the 2x2 latent (1: 4 tokens, 2: one)."),
    ] = None,
    ema_decay: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="EMA decay of the weights used for sampling."),
    ] = None,
    uniform_t_share: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of training t drawn uniformly instead of logit-normal (more weight near "
            "t = 1, where sampling starts).",
        ),
    ] = None,
    checkpoint_every: CkptOpt = None,
    force: ForceOpt = False,
    state_dir: StateDirOpt = DEFAULT_STATE,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Train the class-conditional DiT with rectified flow on the encoded latents.

    Example: ddream train-dit --epochs 10
    """
    from ddream.config import with_overrides
    from ddream.stages.train_dit import train_dit
    from ddream.state import StateDir

    prof = _profile(ctx, profile, preset)
    model_cfg, cfg = _checked(
        with_overrides(prof.dit, width=width, depth=depth, patch_size=patch_size),
        with_overrides(
            prof.dit_train,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            ema_decay=ema_decay,
            uniform_share=uniform_t_share,
            checkpoint_every=checkpoint_every,
        ),
    )
    _train_stage(
        ctx,
        "train-dit",
        StateDir(state_dir),
        device,
        seed,
        cfg.batch_size,
        quiet,
        lambda state, dist: train_dit(
            state,
            model_cfg,
            cfg,
            device=dist.device,
            seed=seed,
            quiet=quiet,
            sample_cfg=prof.sample,
            force=force,
            dist=dist,
        ),
    )


@app.command("distill")
def distill_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    profile: ProfileOpt = "reference",
    preset: PresetOpt = "default",
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Epochs over the teacher's pairs (reference: 10).")
    ] = None,
    pairs: Annotated[
        int | None,
        typer.Option(min=64, help="(noise, class) -> teacher latent pairs to learn from."),
    ] = None,
    teacher_steps: Annotated[
        int | None, typer.Option(min=1, max=200, help="Heun steps of the teacher for the pairs.")
    ] = None,
    student_steps: Annotated[
        int | None,
        typer.Option(min=1, max=2, help="The student's default steps when sampling (1 or 2)."),
    ] = None,
    lr: Annotated[float | None, typer.Option(min=1e-9, help="Peak learning rate.")] = None,
    checkpoint_every: CkptOpt = None,
    force: ForceOpt = False,
    state_dir: StateDirOpt = DEFAULT_STATE,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Distil the trained DiT into a student that draws a digit in one network pass.

    The guided teacher draws (noise, class) -> latent pairs; the student, started from the teacher,
    learns the straight path between them (one round of reflow), with the guidance baked in. A
    smaller decoder learns to imitate the autoencoder's for fast decoding. `ddream sample` then
    uses both; `--model teacher` keeps the DiT's ODE.

    Example: ddream distill
    """
    from ddream.config import with_overrides
    from ddream.stages.distill import distill
    from ddream.state import StateDir

    prof = _profile(ctx, profile, preset)
    (cfg,) = _checked(
        with_overrides(
            prof.distill,
            epochs=epochs,
            pairs=pairs,
            teacher_steps=teacher_steps,
            student_steps=student_steps,
            lr=lr,
            checkpoint_every=checkpoint_every,
        )
    )
    dev = _setup(device, seed)
    state = StateDir(state_dir)
    with state.locked("distill"):
        state.write_run("distill", _options(ctx))
        result = distill(state, cfg, device=dev, seed=seed, quiet=quiet, force=force)
    _report("distill", result, quiet)


# ---- using the models ---------------------------------------------------------------------------
@app.command("sample")
def sample_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    n: Annotated[
        int | None,
        typer.Option(
            "--n", "-n", min=1, max=100_000, help="How many digits (default 100; 10 a morph frame)."
        ),
    ] = None,
    classes: Annotated[
        list[int] | None,
        typer.Option(
            "--class",
            "-c",
            min=0,
            max=9,
            help="Class to draw (repeatable); default: a row of each of 0-9.",
        ),
    ] = None,
    model: ModelOpt = "auto",
    steps: StepsOpt = None,
    cfg: CfgOpt = None,
    cfg_interval: IntervalOpt = None,
    solver: SolverOpt = None,
    grid: Annotated[
        Path | None,
        typer.Option(
            "--grid", help="PNG grid to write (default samples.png when no other output is named)."
        ),
    ] = None,
    gif: Annotated[
        Path | None,
        typer.Option(
            "--gif",
            help="GIF of the sampling trajectory: the teacher's ODE steps, or for the student the "
            "straight path from the noise to its digit that its 1-2 steps jump along.",
        ),
    ] = None,
    npz: Annotated[
        Path | None, typer.Option("--npz", help=".npz with images (uint8 Nx28x28) and labels.")
    ] = None,
    scale: Annotated[int, typer.Option(min=1, max=16, help="Pixel zoom of the pictures.")] = 1,
    labels: Annotated[
        bool, typer.Option("--labels/--no-labels", help="Label each grid row with its class.")
    ] = True,
    interpolate: Annotated[
        tuple[int, int] | None,
        typer.Option(
            "--interpolate",
            min=0,
            help="Morph from A to B (two classes, or two seeds with --between seeds) into --gif.",
        ),
    ] = None,
    between: Annotated[
        str, typer.Option(help="What --interpolate morphs between: classes or seeds.")
    ] = "classes",
    frames: Annotated[
        int, typer.Option(min=2, max=200, help="Frames of an --interpolate morph.")
    ] = 16,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    state_dir: StateDirOpt = DEFAULT_STATE,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Draw new digits with the trained DiT and decoder.

    A morph: ddream sample --interpolate 3 8 --gif morph.gif

    Example: ddream sample -c 3 -c 8 --n 20 --gif out.gif
    """
    from ddream.flow import SOLVERS
    from ddream.render import check_output
    from ddream.stages.sample import SampleRequest, morph, sample
    from ddream.state import StateDir

    _finite(cfg, "--cfg")
    if solver is not None and solver not in SOLVERS:
        _bad(f"--solver {solver!r}: choose one of {', '.join(SOLVERS)}")
    table = _sample_table(ctx)  # a --config file's [sample] settings, under the flags
    steps = steps if steps is not None else table.get("steps")
    cfg = cfg if cfg is not None else table.get("cfg")
    solver = solver if solver is not None else table.get("solver")
    cfg_interval = cfg_interval if cfg_interval is not None else table.get("cfg_interval")
    if between not in ("classes", "seeds"):
        _bad(f"--between {between!r}: choose classes or seeds")
    if interpolate is not None:
        if between == "classes" and max(interpolate) > 9:
            _bad(f"--interpolate {interpolate[0]} {interpolate[1]}: classes are 0-9")
        if npz is not None:
            _bad("--npz does not go with --interpolate; use --gif (and --grid)")
        if gif is None and grid is None:
            gif = Path("morph.gif")
    n = n if n is not None else (10 if interpolate is not None else 100)
    if grid is None and gif is None and npz is None:
        grid = Path("samples.png")
    paths = {
        "grid": grid and check_output(grid, ".png", "--grid"),
        "gif": gif and check_output(gif, ".gif", "--gif"),
        "npz": npz and check_output(npz, ".npz", "--npz"),
    }
    req = SampleRequest(
        n=n,
        classes=tuple(classes) if classes else tuple(range(10)),
        steps=steps,
        cfg=cfg,
        solver=solver,
        seed=seed,
        model=model,
        cfg_interval=_interval(cfg_interval),
    )
    dev = _setup(device, seed)
    if interpolate is not None:
        result = morph(
            StateDir(state_dir),
            req,
            interpolate[0],
            interpolate[1],
            between=between,
            frames=frames,
            device=dev,
            gif_path=paths["gif"],
            grid_path=paths["grid"],
            scale=scale,
        )
        if as_json:
            typer.echo(json.dumps(result))
        elif not quiet:
            typer.echo(
                f"morphed {between} {interpolate[0]} -> {interpolate[1]} in {frames} frames: "
                f"{', '.join(result['written'])}"
            )
        return
    result = sample(
        StateDir(state_dir),
        req,
        device=dev,
        grid_path=paths["grid"],
        gif_path=paths["gif"],
        npz_path=paths["npz"],
        scale=scale,
        labels_on=labels,
    )
    if as_json:
        typer.echo(json.dumps(result))
    elif not quiet:
        typer.echo(
            f"sampled {n} digits with the {result['model']} ({result['steps']} {result['solver']} "
            f"step{'s' if result['steps'] > 1 else ''}, cfg {result['cfg']}, "
            f"{result['decoder']} decoder) "
            f"in {result['seconds']:.2f}s "
            f"({result['digits_per_s']:.0f}/s): {', '.join(result['written'])}"
        )


@app.command("reconstruct")
def reconstruct_cmd(
    images: Annotated[
        list[Path] | None, typer.Argument(help="PNG/JPEG/BMP/GIF files of digits.")
    ] = None,
    test: Annotated[
        int | None,
        typer.Option(
            "--test", min=1, max=10_000, help="Instead: N test digits over their reconstructions."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Output PNG (default NAME.recon.png beside "
            "the input; reconstructions.png with --test).",
        ),
    ] = None,
    invert: Annotated[
        bool | None,
        typer.Option(
            "--invert/--no-invert",
            help="Force (or forbid) inverting dark-on-light input; default: detect.",
        ),
    ] = None,
    scale: Annotated[
        int | None, typer.Option(min=1, max=16, help="Pixel zoom of the figure.")
    ] = None,
    data_dir: DataDirOpt = None,
    state_dir: StateDirOpt = DEFAULT_STATE,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Encode and decode digit images and write each beside its reconstruction, with PSNR.

    Reconstruction always uses the autoencoder's own decoder (sampling may use a distilled one).

    Example: ddream reconstruct my_digit.png
    """
    from ddream.stages.reconstruct import reconstruct_files, reconstruct_test
    from ddream.state import StateDir

    if not images and test is None:
        _bad("give image files, or --test N")
    if images and test is not None:
        _bad("give image files or --test N, not both")
    dev = _setup(device, seed)
    state = StateDir(state_dir)
    if test is not None:
        res = reconstruct_test(
            state,
            test,
            out=out or Path("reconstructions.png"),
            data_dir=data_dir,
            device=dev,
            scale=scale or 2,
        )
        if not quiet:
            typer.echo(
                f"{res['n']} test digits through the autoencoder's own decoder, mean PSNR "
                f"{res['psnr']:.2f} dB: {res['output']}"
            )
        return
    for res in reconstruct_files(
        state, images, out=out, invert=invert, device=dev, scale=scale or 4
    ):
        if not quiet:
            typer.echo(
                f"{res['input']}: PSNR {res['psnr']:.2f} dB (autoencoder's decoder) -> {res['output']}"
            )


@app.command("eval")
def eval_cmd(
    n: Annotated[
        int,
        typer.Option(
            "--n", "-n", min=10, max=100_000, help="Generated digits, balanced over classes."
        ),
    ] = 10_000,
    model: ModelOpt = "auto",
    steps: StepsOpt = None,
    cfg: CfgOpt = None,
    cfg_interval: IntervalOpt = None,
    solver: SolverOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    state_dir: StateDirOpt = DEFAULT_STATE,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Measure reconstruction (PSNR, SSIM) and generation (FID, class accuracy, precision, recall).

    Generation is scored on the features of a digit classifier trained once and cached in the
    state dir; the real-data floor (held-out real digits) is printed beside. The report is kept in
    the state dir (eval/report.json) for `ddream serve`'s Model tab.

    Example: ddream eval --data-dir ../shared/data/mnist --json
    """
    from ddream.flow import SOLVERS
    from ddream.stages.evaluate import evaluate
    from ddream.stages.sample import SampleRequest
    from ddream.state import StateDir

    _finite(cfg, "--cfg")
    if solver is not None and solver not in SOLVERS:
        _bad(f"--solver {solver!r}: choose one of {', '.join(SOLVERS)}")
    dev = _setup(device, seed)
    req = SampleRequest(
        n=n,
        steps=steps,
        cfg=cfg,
        solver=solver,
        seed=seed,
        model=model,
        cfg_interval=_interval(cfg_interval),
    )
    say = _say(quiet or as_json)
    result = evaluate(StateDir(state_dir), req, data_dir=data_dir, device=dev, say=say)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    g, f = result["generation"], result["real_floor"]
    table = Table(title=f"ddream eval: {state_dir} ({result['dataset']})")
    for col in ("metric", "model", "real-data floor"):
        table.add_column(col)
    for name, d in result["decoders"].items():
        table.add_row(f"reconstruction PSNR (28x28), {name} decoder", f"{d['psnr']:.2f} dB", "")
        table.add_row(f"reconstruction SSIM, {name} decoder", f"{d['ssim']:.4f}", "")
        table.add_row(f"reconstruction FID, {name} decoder", f"{d['fid']:.3f}", "")
    table.add_row("FID (classifier features)", f"{g['fid']:.3f}", f"{f['fid']:.3f}")
    table.add_row("class accuracy", f"{g['class_accuracy']:.2%}", f"{f['class_accuracy']:.2%}")
    table.add_row("precision (k=3)", f"{g['precision']:.3f}", f"{f['precision']:.3f}")
    table.add_row("recall (k=3)", f"{g['recall']:.3f}", f"{f['recall']:.3f}")
    console = Console()
    console.print(table)
    console.print(
        f"{result['samples']} samples from the {result['model']} ({result['steps']} "
        f"{result['solver']} step{'s' if result['steps'] > 1 else ''}, cfg {result['cfg']}, "
        f"{result['sampling_decoder']} decoder): "
        f"{result['digits_per_s']:.0f} "
        f"digits/s. Extractor: {result['extractor']}, test accuracy "
        f"{result['extractor_test_accuracy']:.2%}.",
        highlight=False,
    )


# ---- the pipeline ----------------------------------------------------------------------------------
@app.command("all")
def all_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    profile: ProfileOpt = "reference",
    preset: PresetOpt = "default",
    data_dir: DataDirOpt = None,
    dataset: DatasetOpt = "mnist",
    ae_epochs: Annotated[int | None, typer.Option(min=0, help="Augmented AE epochs.")] = None,
    finetune_epochs: Annotated[int | None, typer.Option(min=0, help="Fine-tune AE epochs.")] = None,
    dit_epochs: Annotated[int | None, typer.Option(min=1, help="DiT epochs.")] = None,
    distill_epochs: Annotated[
        int | None, typer.Option(min=1, help="Distillation epochs (student and decoder).")
    ] = None,
    latent_channels: Annotated[
        int | None, typer.Option(min=1, help="Channels of the 2x2 latent.")
    ] = None,
    checkpoint_every: CkptOpt = None,
    state_dir: StateDirOpt = DEFAULT_STATE,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Run train-ae -> encode -> train-dit -> distill -> samples (state dir: samples.png, .gif).

    Each stage is skipped when done and fresh, resumed when interrupted, redone when stale.

    Example: ddream all --profile quick --data-dir ../shared/data/mnist
    """
    import dataclasses

    from ddream.config import with_overrides
    from ddream.stages.pipeline import run_all
    from ddream.state import StateDir

    prof = _profile(ctx, profile, preset)
    _check_dataset(dataset)
    prof = dataclasses.replace(
        prof,
        ae=with_overrides(prof.ae, latent_channels=latent_channels),
        ae_train=with_overrides(
            prof.ae_train,
            epochs=ae_epochs,
            finetune_epochs=finetune_epochs,
            checkpoint_every=checkpoint_every,
        ),
        dit_train=with_overrides(
            prof.dit_train, epochs=dit_epochs, checkpoint_every=checkpoint_every
        ),
        distill=with_overrides(
            prof.distill, epochs=distill_epochs, checkpoint_every=checkpoint_every
        ),
    )
    _checked(prof.ae, prof.ae_train, prof.dit, prof.dit_train, prof.sample, prof.distill)
    dev = _setup(device, seed)
    state = StateDir(state_dir)
    with state.locked("all"):
        state.write_run("all", _options(ctx))
        summary = run_all(
            state,
            prof,
            data_dir=data_dir,
            dataset=dataset,
            device=dev,
            seed=seed,
            quiet=quiet,
            say=_say(quiet),
        )
    if not quiet:
        typer.echo(f"samples: {', '.join(summary['sample']['written'])}")


@app.command("config")
def config_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    profile: ProfileOpt = "reference",
    preset: PresetOpt = "default",
    state_dir: StateDirOpt = DEFAULT_STATE,
) -> None:
    """Print every setting as TOML tables that --config reads back: what the state dir's finished
    stages were trained with, and the profile's (with --config applied) for the rest.

    Example: ddream config --profile quick > run.toml  (edit it, then: ddream all --config run.toml)
    """
    from ddream.config import to_toml
    from ddream.state import StateDir
    from ddream.status import recorded_profile

    prof, recorded = recorded_profile(StateDir(state_dir), _profile(ctx, profile, preset))
    source = f"profile {profile}, preset {preset}" + (f", {config}" if config else "")
    header = f"ddream {__version__} settings: {source}"
    if recorded:
        header += f"\n[{'], ['.join(recorded)}] as trained in {state_dir}"
    typer.echo(to_toml(prof, header), nl=False)


@app.command("status")
def status_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
    state_dir: StateDirOpt = DEFAULT_STATE,
) -> None:
    """Show each stage: done / partial / stale / missing / corrupt, metrics, sizes, wall time.

    Example: ddream status --state-dir ddream-state
    """
    from ddream.state import StateDir
    from ddream.status import next_command, status_rows

    state = StateDir(state_dir)
    rows = status_rows(state)
    nxt = next_command(rows)
    run = state.read().get("run")
    if as_json:
        report = {
            "state_dir": str(state_dir),
            "next": nxt,
            "stages": [r.__dict__ for r in rows],
            "run": run,
        }
        typer.echo(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    colours = {
        "done": "green",
        "partial": "yellow",
        "stale": "magenta",
        "missing": "dim",
        "corrupt": "red",
    }
    table = Table(title=f"ddream state: {state_dir}")
    for col in ("stage", "status", "detail", "metrics", "size", "wall time"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.stage,
            f"[{colours[r.status]}]{r.status}[/]",
            r.detail,
            r.metrics,
            _size(r.size_bytes) if r.size_bytes else "",
            f"{r.wall_time:.0f}s" if r.wall_time else "",
        )
    console = Console()
    console.print(table)
    if run:
        opts = " ".join(
            f"{k.replace('_', '-')}={v}" for k, v in run["options"].items() if v is not None
        )
        console.print(f"last run: ddream {run['command']} ({run['time']}): {opts}", highlight=False)
    console.print(
        f"next: {nxt} (or `ddream all`)" if nxt else "all stages done: try `ddream sample`"
    )


@app.command("serve")
def serve_cmd(
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port of the page.")] = 7860,
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to bind; 0.0.0.0 makes the page reachable from the network."
        ),
    ] = "127.0.0.1",
    state_dir: StateDirOpt = DEFAULT_STATE,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Open a local demo page: generate digits, draw one and see it reconstructed, morph, and
    what `ddream status` and the last `ddream eval` know. Needs the serve extra (Gradio).

    The models are loaded once, read-only; nothing is written into the state dir.

    Example: ddream serve --state-dir ddream-state   # then open http://127.0.0.1:7860
    """
    from ddream.page import LOCAL_HOSTS, import_gradio, serve

    import_gradio()  # one line on how to install it, before any model is loaded
    if host not in LOCAL_HOSTS:
        typer.echo(
            f"warning: --host {host}: the page (and your model) is reachable from the network",
            err=True,
        )
    from ddream.demo import Demo

    demo = Demo(state_dir, _setup(device, 0))
    try:
        if not quiet:
            typer.echo(f"ddream serve: {state_dir} on http://{host}:{port} (Ctrl-C stops it)")
        serve(demo, host, port, quiet=quiet)
    finally:
        demo.close()


# ---- helpers --------------------------------------------------------------------------------------
def _options(ctx: typer.Context) -> dict:
    """The effective options of this command (config file, flags and defaults), JSON-ready."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in ctx.params.items()}


def _bad(message: str) -> None:
    from ddream.errors import BadInput

    raise BadInput(message)


def _interval(value: tuple[float, float] | None) -> tuple[float, float] | None:
    """--cfg-interval LO HI: finite, 0 <= LO <= HI <= 1."""
    if value is None:
        return None
    lo, hi = (_finite(v, "--cfg-interval") for v in value)
    if not 0.0 <= lo <= hi <= 1.0:
        _bad(f"--cfg-interval {lo} {hi}: need 0 <= LO <= HI <= 1 (t = 1 is noise)")
    return (lo, hi)


def _finite(value: float | None, option: str) -> float | None:
    if value is not None and not math.isfinite(value):
        _bad(f"{option} must be a finite number, not {value}")
    return value


def _check_dataset(name: str) -> None:
    from ddream.data import get_dataset

    get_dataset(name)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _report(command: str, result: dict, quiet: bool) -> None:
    if quiet:
        return
    metrics = ", ".join(
        f"{k} {v}"
        for k, v in result.get("metrics", {}).items()
        if not isinstance(v, list) and k != "epoch"
    )
    if result.get("skipped"):
        typer.echo(f"{command}: already done and fresh ({metrics}); use --force to redo")
    else:
        typer.echo(f"{command}: done in {result.get('wall_time', 0):.1f}s ({metrics})")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; known errors become one line on stderr and an exit code."""
    from ddream.errors import DDreamError

    argv = sys.argv[1:] if argv is None else argv
    debug = os.environ.get("DDREAM_DEBUG") == "1" or "--debug" in argv[:1]
    try:
        rv = typer.main.get_command(app).main(args=argv, prog_name="ddream", standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else 0)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(130)
    except DDreamError as e:
        if debug or os.environ.get("DDREAM_DEBUG") == "1":
            raise
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
    except Exception as e:
        if _is_usage_error(e):  # typer/click's own: bad option values, unknown commands
            if type(e).__name__ == "NoArgsIsHelpError":
                typer.echo(e.ctx.get_help() if getattr(e, "ctx", None) else e.format_message())
                sys.exit(0)
            typer.echo(f"error: {e.format_message()}{_help_hint(e)}", err=True)
            sys.exit(2)
        if debug or os.environ.get("DDREAM_DEBUG") == "1":
            raise
        typer.echo(
            f"error: {type(e).__name__}: {e} (run with DDREAM_DEBUG=1 for the traceback)", err=True
        )
        sys.exit(1)


def _is_usage_error(e: Exception) -> bool:
    # Typer >= 0.2x vendors click, older ones use click itself: match the shape, not the module.
    return hasattr(e, "format_message") and any(c.__name__ == "UsageError" for c in type(e).__mro__)


def _help_hint(e: Exception) -> str:
    ctx = getattr(e, "ctx", None)
    return f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
