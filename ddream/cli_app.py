"""The `ddream` Typer app itself: its name, its help, and the options every command shares
(`--version`, `--debug`). The commands are in cli_train.py (the stages that make models) and
cli_use.py (what uses them, and the state dir's tools); cli.py puts them together."""

from __future__ import annotations

import os
from typing import Annotated

import typer

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
