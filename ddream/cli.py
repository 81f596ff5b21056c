"""The `ddream` command line: parse options, call one stage function, turn errors into one line.

Options are declared once in `cli_options`, what is printed lives in `reports`; the commands are in
`cli_train` (the stages that make models) and `cli_use` (what uses them); each reads like its help.
Exit codes: 0 ok, 1 failure, 2 bad input, 130 interrupted (143 on SIGTERM).
"""

from __future__ import annotations

import sys

from ddream import cli_edit, cli_train, cli_use  # noqa: F401  (each registers its commands)
from ddream.cli_app import app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; known errors become one line on stderr and an exit code."""
    from ddream.reports import run_cli

    run_cli(app, sys.argv[1:] if argv is None else argv)
