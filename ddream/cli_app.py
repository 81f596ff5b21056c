"""The `ddream` Typer app itself: its name, its help, and the options every command shares
(`--version`, `--debug`). The commands are in cli_train.py (the stages that make models) and
cli_use.py (what uses them, and the state dir's tools); cli.py puts them together."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated

import typer

from ddream import cli_options as o
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


# ---- options many commands take, declared once ---------------------------------------------------
# A command names them bare after its `*` (`*, state_dir, device, seed, quiet`), and `cli_app.shared`
# gives each its declaration (cli_options) and default here.
SHARED: dict[str, tuple[object, object]] = {
    "config": (o.ConfigOpt, None), "profile": (o.ProfileOpt, "reference"),
    "preset": (o.PresetOpt, "default"), "data_dir": (o.DataDirOpt, None),
    "dataset": (o.DatasetOpt, "mnist"), "batch_size": (o.BatchOpt, None), "lr": (o.LrOpt, None),
    "latent_channels": (o.LatentOpt, None), "finetune_epochs": (o.FinetuneOpt, None),
    "checkpoint_every": (o.CkptOpt, None), "tensorboard": (o.TensorboardOpt, None),
    "force": (o.ForceOpt, False), "model": (o.ModelOpt, "auto"), "steps": (o.StepsOpt, None),
    "cfg": (o.CfgOpt, None), "cfg_interval": (o.IntervalOpt, None), "solver": (o.SolverOpt, None),
    "dtype": (o.DtypeOpt, "auto"), "scale": (o.ScaleOpt, None), "as_json": (o.JsonOpt, False),
    "state_dir": (o.StateDirOpt, o.DEFAULT_STATE), "device": (o.DeviceOpt, "auto"),
    "seed": (o.SeedOpt, 0), "quiet": (o.QuietOpt, False),
}  # fmt: skip


def shared(command: Callable) -> Callable:
    """Give each keyword-only parameter that a command names bare its declaration and default from
    `SHARED` (the options many commands take, declared once); Typer reads the result."""
    import inspect
    import typing

    hints = typing.get_type_hints(command, include_extras=True)
    params = []
    for p in inspect.signature(command).parameters.values():
        if p.kind is p.KEYWORD_ONLY and p.annotation is p.empty and p.default is p.empty:
            annotation, default = SHARED[p.name]
            p = p.replace(annotation=annotation, default=default)
        else:
            p = p.replace(annotation=hints.get(p.name, p.annotation))
        params.append(p)
    command.__signature__ = inspect.signature(command).replace(parameters=params)
    command.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not p.empty}
    return command
