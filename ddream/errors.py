"""The errors ddream turns into one line and an exit code (0 ok, 1 failure, 2 bad input, 130 interrupted)."""

from __future__ import annotations

import os
import sys


class DDreamError(Exception):
    """A problem the user can act on; the CLI prints its message as one line."""

    exit_code = 1


class BadInput(DDreamError):
    """Bad options, files or data given by the user."""

    exit_code = 2


class StateBusy(DDreamError):
    """Another process holds the state directory's lock."""

    exit_code = 1


class NotBuilt(DDreamError):
    """A stage whose input artifact does not exist yet."""

    exit_code = 1


class Interrupted(DDreamError):
    """Training stopped by a signal after its resume checkpoint was written."""

    def __init__(self, message: str, signum: int = 2) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


# ---- errors as one line, for the command line ------------------------------------------------------
def run_cli(app, argv: list[str]) -> None:
    """Run a Typer app; known errors become one line on stderr and an exit code, never a traceback
    (unless DDREAM_DEBUG=1 or --debug)."""
    import typer

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
            message = e.format_message().replace("Value error, ", "")  # Typer's Literal checks
            typer.echo(f"error: {message}{_help_hint(e)}", err=True)
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
