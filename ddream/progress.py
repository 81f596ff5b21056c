"""Training progress: rich bars (epoch and step, live metrics, ETA) on a terminal, one plain line per
epoch otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    """Rich bars (epoch and step, live metrics, ETA) on a terminal; one plain line per epoch otherwise."""

    def __init__(self, stage: str, total_epochs: int, steps_per_epoch: int, quiet: bool) -> None:
        self.stage, self.total_epochs, self.steps = stage, total_epochs, steps_per_epoch
        self.quiet = quiet
        self.rich = not quiet and sys.stdout.isatty()
        self._bar = None

    def __enter__(self) -> Progress:
        if self.rich:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            self._bar.__enter__()
            self._epochs = self._bar.add_task(
                f"{self.stage} epochs", total=self.total_epochs, info=""
            )
            self._steps = self._bar.add_task("steps", total=self.steps, info="")
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def start_epoch(self, epoch: int, first_step: int) -> None:
        if self._bar is not None:
            self._bar.update(self._epochs, completed=epoch)
            self._bar.reset(
                self._steps,
                total=self.steps,
                completed=first_step,
                description=f"epoch {epoch + 1}/{self.total_epochs}",
            )

    def step(self, done_in_epoch: int, info: str | None) -> None:
        if self._bar is not None:
            if info is None:
                self._bar.update(self._steps, completed=done_in_epoch)
            else:
                self._bar.update(self._steps, completed=done_in_epoch, info=info)

    def end_epoch(self, epoch: int, summary: str, eta_s: float) -> None:
        if self._bar is not None:
            self._bar.update(self._epochs, completed=epoch + 1, info=summary)
        elif not self.quiet:
            eta = time.strftime("%H:%M:%S", time.gmtime(max(0.0, eta_s)))
            print(
                f"{self.stage} epoch {epoch + 1}/{self.total_epochs}  {summary}  ETA {eta}",
                flush=True,
            )

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text)
        elif not self.quiet:
            print(text, flush=True)
