"""The errors ddream turns into one line and an exit code (0 ok, 1 failure, 2 bad input, 130 interrupted).
Each entry point words them its own way (reports.run_cli for the command line); this module knows none."""

from __future__ import annotations


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
