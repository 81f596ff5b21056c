"""Training progress: rich bars (epoch and step, live metrics, ETA) on a terminal, one plain line per
epoch otherwise."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field


class Progress:
    """Rich bars (epoch and step, live metrics, ETA) on a terminal; one plain line per epoch otherwise."""

    def __init__(self, stage: str, total_epochs: int, steps_per_epoch: int, quiet: bool) -> None:
        self.stage, self.total_epochs, self.steps = stage, total_epochs, steps_per_epoch
        self.quiet = quiet
        self.rich = not quiet and sys.stdout.isatty()
        self._bar = None
        self._t0, self._first_epoch = time.perf_counter(), None

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
        if self._first_epoch is None:
            self._first_epoch = epoch + first_step / max(1, self.steps)
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
        plan = PLAN.get()
        if plan is not None:  # under `ddream all`: what is left of the whole run, too
            done_before = (self._first_epoch or 0) / self.total_epochs
            plan.epoch(self.stage, time.perf_counter() - self._t0, eta_s, done_before)
            summary += f"  ({plan.text(self.stage, eta_s)})"
        if self._bar is not None:
            self._bar.update(self._epochs, completed=epoch + 1, info=summary)
        elif not self.quiet:
            print(
                f"{self.stage} epoch {epoch + 1}/{self.total_epochs}  {summary}  ETA {clock(eta_s)}",
                flush=True,
            )

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text)
        elif not self.quiet:
            print(text, flush=True)


# ---- the whole run (`ddream all`) ---------------------------------------------------------------------
_IMPORTED = time.perf_counter()


def process_seconds() -> float:
    """Seconds since this process started (Linux reads it from /proc: the interpreter's start-up and
    imports count), else since ddream's progress module was imported."""
    try:
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: start, in clock ticks
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        age = uptime - started / os.sysconf("SC_CLK_TCK")
        if 0 <= age < 10 * 24 * 3600:
            return age
    except (OSError, ValueError, IndexError):
        pass
    return time.perf_counter() - _IMPORTED


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (0 where the OS does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)  # bytes on macOS


@dataclass
class Ledger:
    """Where every second of a whole run went: named parts, in order, timed as they finish; what
    the parts do not cover (the interpreter's start-up before the first part, the gaps between them)
    is its own line, so the parts sum to the whole by construction."""

    start: float = field(default_factory=process_seconds)  # the process's age when the run began
    parts: dict[str, float] = field(default_factory=dict)
    details: dict[str, dict[str, float]] = field(default_factory=dict)

    peak_mib: dict[str, float] = field(default_factory=dict)  # the process's peak RSS after each

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Adds the wall time of its block to part `name`, and notes the peak memory after it."""
        if not self.peak_mib:
            self.peak_mib["start-up"] = peak_rss_mib()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - t0
            self.peak_mib[name] = peak_rss_mib()

    def table(self) -> dict[str, float]:
        """Each part's seconds, start-up first and 'other' last, summing to the process's age."""
        total = process_seconds()
        out = {"start-up": self.start, **self.parts}
        out["other"] = max(0.0, total - sum(out.values()))
        out["total"] = total
        return {k: round(v, 2) for k, v in out.items()}

    @staticmethod
    def line(table: dict[str, float], details: dict[str, dict[str, float]] | None = None) -> str:
        """The table in one line: 'total 812 s = start-up 3 + ae 400 (...) + ... + other 0'."""
        details = details or {}

        def part(name: str) -> str:
            inner = details.get(name)
            sub = ", ".join(f"{k} {v:.0f}" for k, v in inner.items()) if inner else ""
            return f"{name} {table[name]:.0f}" + (f" ({sub})" if sub else "")

        names = [k for k in table if k != "total"]
        return f"whole run {table['total']:.0f} s = " + " + ".join(part(k) for k in names)


def clock(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"


@dataclass
class Plan:
    """What is left of a whole run: each stage's work in development-machine seconds, scaled by a
    factor measured on this machine (finished stages' wall time, then each epoch of the current one)."""

    expected: dict[str, float]  # stage -> seconds on the development machine (0 when done)
    factor: float = 1.0
    measured: bool = False
    stage_started: dict[str, float] = field(default_factory=dict)

    def finished(self, stage: str, wall_time: float) -> None:
        if self.expected.get(stage, 0) > 0 and wall_time > 0:
            self.factor, self.measured = wall_time / self.expected[stage], True
        self.expected[stage] = 0.0

    def epoch(self, stage: str, elapsed: float, left: float, done_before: float) -> None:
        """The current stage's elapsed and predicted remaining seconds in this process, having
        started at `done_before` (the share of its epochs done before this process)."""
        todo = self.expected.get(stage, 0) * (1 - done_before)
        if todo > 0 and elapsed > 1:
            self.factor, self.measured = (elapsed + left) / todo, True

    def left(self, stage: str | None = None, stage_left: float | None = None) -> float:
        """Seconds left for the whole run: the current stage's own estimate (when given) plus the
        stages after it at the measured pace."""
        names = list(self.expected)
        after = names[names.index(stage) + 1 :] if stage in names else names
        rest = sum(self.expected[s] for s in after) * self.factor
        if stage_left is None and stage in names:
            stage_left = self.expected[stage] * self.factor
        return rest + (stage_left or 0.0)

    def text(self, stage: str | None = None, stage_left: float | None = None) -> str:
        how = "" if self.measured else ", estimated from the development machine"
        return f"whole run: about {clock(self.left(stage, stage_left))} left{how}"


PLAN: ContextVar[Plan | None] = ContextVar("ddream_plan", default=None)
