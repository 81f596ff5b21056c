"""How a command turns its options into work: every setting of the run (preset, profile, --config
tables, flags), the device, and a training stage run alone or as one rank under torchrun."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import typer

from ddream.errors import BadInput

# The setting each training flag sets, per command: one table instead of a with_overrides per command.
FLAG_SETTINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "train-ae": {
        "latent_channels": ("ae.latent_channels",),
        "epochs": ("ae_train.epochs",),
        "finetune_epochs": ("ae_train.finetune_epochs",),
        "batch_size": ("ae_train.batch_size",),
        "lr": ("ae_train.lr",),
        "gan_weight": ("ae_train.gan_weight",),
        "gan_start": ("ae_train.gan_start",),
        "checkpoint_every": ("ae_train.checkpoint_every",),
        "tensorboard": ("log.tensorboard",),
    },
    "train-dit": {
        "width": ("dit.width",),
        "depth": ("dit.depth",),
        "patch_size": ("dit.patch_size",),
        "epochs": ("dit_train.epochs",),
        "batch_size": ("dit_train.batch_size",),
        "lr": ("dit_train.lr",),
        "ema_decay": ("dit_train.ema_decay",),
        "uniform_t_share": ("dit_train.uniform_share",),
        "checkpoint_every": ("dit_train.checkpoint_every",),
        "tensorboard": ("log.tensorboard",),
    },
    "distill": {
        "epochs": ("distill.epochs",),
        "pairs": ("distill.pairs",),
        "teacher_steps": ("distill.teacher_steps",),
        "lr": ("distill.lr",),
        "checkpoint_every": ("distill.checkpoint_every",),
        "tensorboard": ("log.tensorboard",),
    },
    "all": {
        "latent_channels": ("ae.latent_channels",),
        "ae_epochs": ("ae_train.epochs",),
        "finetune_epochs": ("ae_train.finetune_epochs",),
        "dit_epochs": ("dit_train.epochs",),
        "distill_epochs": ("distill.epochs",),
        "checkpoint_every": (
            "ae_train.checkpoint_every",
            "dit_train.checkpoint_every",
            "distill.checkpoint_every",
        ),
        "tensorboard": ("log.tensorboard",),
    },
}


def settings(ctx: typer.Context):
    """Every setting of this command's run: the preset at its profile's scale, then the --config
    file's tables, then the command's flags (FLAG_SETTINGS), validated in one place."""
    import dataclasses

    from ddream.config import SECTIONS
    from ddream.config_file import apply_tables
    from ddream.config_rules import validate
    from ddream.presets import get_profile, on_gpu

    params = ctx.params
    source, tables = ctx.meta.get("ddream_tables", ("--config", {}))
    prof = get_profile(params["profile"], params["preset"])
    if on_cuda(params.get("device")):  # a GPU's own schedule, under the file's and flags' word
        prof = on_gpu(prof)
    prof = apply_tables(prof, tables, source)
    changes: dict[str, dict] = {}
    for flag, targets in FLAG_SETTINGS.get(ctx.info_name, {}).items():
        if params.get(flag) is not None:
            for target in targets:
                section, field = target.split(".")
                value = params[flag]
                value = str(value) if isinstance(value, Path) else finite(value, f"--{flag}")
                changes.setdefault(section, {})[field] = value
    prof = dataclasses.replace(
        prof, **{k: dataclasses.replace(getattr(prof, k), **v) for k, v in changes.items()}
    )
    for section in SECTIONS:
        validate(getattr(prof, section))
    if prof.ae.arch == "digitdreamer" and prof.ae.io != "conv":
        # checked here, for a run's settings, not in validate(): models stored by e49c078..d31fde3
        # carry this pair and must still load
        raise BadInput(
            f"[ae] io {prof.ae.io!r} is DC-AE's project-in/out; the digitdreamer arch works at "
            "32x32: set io = 'conv' (or use --preset digitdreamer)"
        )
    if prof.log.tensorboard:
        tensorboard_dir(prof.log.tensorboard)
    return prof


def tensorboard_dir(path: str) -> None:
    """`--tensorboard DIR` (or [log] tensorboard): not a file, and the extra installed; checked
    before any training starts."""
    from ddream.render import check_folder
    from ddream.watch import summary_writer_class

    check_folder(Path(path), "--tensorboard")
    summary_writer_class()


def sample_table(ctx: typer.Context) -> dict:
    """The [sample] table of a --config file, checked; sampling flags left unset take it."""
    from ddream.config import Profile as Settings
    from ddream.config_file import apply_tables

    source, tables = ctx.meta.get("ddream_tables", ("--config", {}))
    if "sample" not in tables:
        return {}
    sample = apply_tables(Settings(name="file"), {"sample": tables["sample"]}, source).sample
    return {k: getattr(sample, k) for k in tables["sample"]}


def options(ctx: typer.Context) -> dict:
    """The effective options of this command (config file, flags and defaults), JSON-ready."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in ctx.params.items()}


def finite(value, option: str):
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInput(f"{option} must be a finite number, not {value}")
    return value


def interval(value: tuple[float, float] | None) -> tuple[float, float] | None:
    """--cfg-interval LO HI: finite, 0 <= LO <= HI <= 1."""
    if value is None:
        return None
    lo, hi = (finite(v, "--cfg-interval") for v in value)
    if not 0.0 <= lo <= hi <= 1.0:
        raise BadInput(f"--cfg-interval {lo} {hi}: need 0 <= LO <= HI <= 1 (t = 1 is noise)")
    return (lo, hi)


def sample_outputs(interpolate, between: str, labels, grid, gif, npz) -> dict[str, Path | None]:
    """`ddream sample`'s output paths, checked (a morph writes a GIF by default, samples a PNG);
    options that do not go with a morph are refused."""
    from ddream.render import check_output

    if interpolate is not None:
        if between == "classes" and max(interpolate) > 9:
            raise BadInput(f"--interpolate {interpolate[0]} {interpolate[1]}: classes are 0-9")
        if npz is not None:
            raise BadInput("--npz does not go with --interpolate; use --gif (and --grid)")
        if labels is not None:
            raise BadInput(
                "--labels/--no-labels do not go with --interpolate (morphs are unlabelled)"
            )
        if gif is None and grid is None:
            gif = Path("morph.gif")
    if grid is None and gif is None and npz is None:
        grid = Path("samples.png")
    return {
        "grid": grid and check_output(grid, ".png", "--grid"),
        "gif": gif and check_output(gif, ".gif", "--gif"),
        "npz": npz and check_output(npz, ".npz", "--npz"),
    }


def say(quiet: bool):
    def echo(text: str) -> None:
        if not quiet:
            typer.echo(text)

    return echo


def on_cuda(device: str | None) -> bool:
    """Whether a command's --device (None: a command without one) will train on a CUDA GPU."""
    if device is None or device == "cpu" or device == "mps":
        return False
    from ddream.runtime import pick_device

    return pick_device(device).type == "cuda"


def device_for(device: str, seed: int):
    """The torch device of a command that runs alone (torch is imported only for real work)."""
    import torch

    from ddream.distributed import world_size
    from ddream.runtime import pick_device

    if world_size() > 1:
        raise BadInput(
            "under torchrun, run `ddream train-ae` or `ddream train-dit`; the other commands run alone"
        )
    torch.manual_seed(seed)
    return pick_device(device)


@contextlib.contextmanager
def writing(state, command: str, ctx: typer.Context | None = None):
    """Every command that writes a state dir: its lock held throughout, and (given the command's
    context) its effective options recorded for `ddream status`."""
    with state.locked(command):
        if ctx is not None:
            state.write_run(command, options(ctx))
        yield state


def run_training_command(ctx, command: str, state_dir: Path, device: str, seed: int, batch: int,
                         quiet: bool, train, force: bool = False) -> dict | None:  # fmt: skip
    """Run a training stage alone or as one rank under torchrun: rank 0 holds the state dir's lock
    and records the run's options; every rank leaves the process group at the end. Returns the
    stage's result on rank 0 (None elsewhere). With `force`, a damaged record of the stage is
    dropped rather than refused."""
    import torch

    from ddream.distributed import init_from_env, shutdown
    from ddream.runtime import pick_device
    from ddream.state import StateDir

    torch.manual_seed(seed)
    dist = init_from_env(pick_device(device), (batch,))
    state = StateDir(state_dir, redo=stage_of(command) if force else None)
    try:
        with writing(state, command, ctx) if dist.main else contextlib.nullcontext():
            result = train(state, dist)
    except BaseException:
        shutdown(dist, clean=False)
        raise
    shutdown(dist, clean=True)
    return result if dist.main else None


def load_config(ctx: typer.Context, value: Path | None) -> Path | None:
    """Eager: a TOML file's top-level keys become the command's defaults (flags override them); its
    settings tables are kept for `settings()` and `sample_table()`."""
    if value is None or ctx.resilient_parsing:
        return value
    from ddream.config_file import read_toml, split_tables

    known = {p.name for p in ctx.command.params} - {"config"}
    top, tables = split_tables(read_toml(value), f"--config {value}")
    ctx.meta["ddream_tables"] = (f"--config {value}", tables)
    options = {}
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


def stage_of(command: str) -> str:
    """The stage a training command runs (registry.py)."""
    from ddream.registry import STAGE_TABLE

    return next(s.name for s in STAGE_TABLE if s.command == command)
