"""What every training stage shares: the epoch/step loop, resume checkpoints, EMA, progress, NaN guard,
and stopping cleanly on SIGINT/SIGTERM.

A stage describes itself as a `Task` (one optimisation step on a batch of indices, an evaluation,
and its state as tensors); `run_training` does the rest. Every random draw of a step comes from a
generator seeded by (seed, step), and every epoch's order from (seed, epoch), so a run resumed from
any checkpoint takes exactly the steps an uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from ddream.checkpoint import load_tensors, save_tensors
from ddream.distributed import SINGLE, Dist
from ddream.errors import BadInput, DDreamError, Interrupted
from ddream.state import StateDir


# ---- determinism and devices ---------------------------------------------------------------------
def seeded(seed: int, *parts: Any) -> torch.Generator:
    """A CPU generator whose seed is derived from (seed, parts): same parts, same draws."""
    text = ":".join(str(p) for p in (seed, *parts))
    g = torch.Generator()
    g.manual_seed(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))
    return g


def pick_device(name: str) -> torch.device:
    """'auto' (cuda > mps > cpu), 'cpu', 'cuda', 'cuda:N' or 'mps'; anything else is bad input."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise BadInput(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"device {name!r} asked for, but CUDA is not available here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise BadInput("device 'mps' asked for, but MPS is not available here")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise BadInput(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return dev


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a null context elsewhere (CPU bf16 is slower than fp32 on most CPUs)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---- EMA -----------------------------------------------------------------------------------------
class EMA:
    """Exponential moving average of a model's parameters: the plain mean of the first 1/(1-d) updates,
    then decay d. (The (1+n)/(10+n) warm-up used before reached 0.999 only after ~9,000 updates, past the
    end of a reference DiT run, so the configured decay never took effect.)"""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, 1.0 - 1.0 / self.updates)
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v.detach(), 1 - d)
            else:
                self.shadow[k].copy_(v)


def cosine_lr(base: float, step: int, total: int, floor: float = 0.1) -> float:
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))


def scheduled_lr(schedule: str, base: float, step: int, total: int) -> float:
    """The learning rate at a step: cosine decay to 10%, or constant."""
    return cosine_lr(base, step, total) if schedule == "cosine" else base


# ---- interrupts ----------------------------------------------------------------------------------
@dataclass
class StopFlag:
    signum: int = 0


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """SIGINT/SIGTERM set a flag that the loop reads after the current step (a second SIGINT aborts)."""
    flag = StopFlag()
    if sys.platform == "win32" or not _in_main_thread():
        yield flag
        return

    def handler(signum, _frame):
        if flag.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.signum = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# ---- progress ------------------------------------------------------------------------------------
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


# ---- the loop ------------------------------------------------------------------------------------
class Task(Protocol):
    """What a training stage supplies to `run_training`."""

    n_train: int
    batch_size: int
    total_epochs: int

    def step(self, epoch: int, global_step: int, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimisation step on those training indices; returns detached scalar losses."""

    def evaluate(self) -> dict[str, float]:
        """Held-out metrics at the end of an epoch."""

    def state(self) -> dict[str, torch.Tensor]:
        """Everything needed to continue (models, optimisers, EMA) as tensors."""

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None: ...

    def meta(self) -> dict[str, Any]:
        """JSON-ready extras for the resume checkpoint (optimiser param_groups...)."""

    def describe(self, losses: dict[str, float], metrics: dict[str, float]) -> str: ...


@dataclass
class RunResult:
    history: list[dict[str, float]] = field(default_factory=list)
    wall_time: float = 0.0
    images_per_s: float = 0.0
    resumed_from: int = 0  # global step the run resumed at (0 = fresh)


def run_training(
    task: Task,
    *,
    stage: str,
    state: StateDir,
    record: dict[str, Any],
    resume_path: Path,
    seed: int,
    checkpoint_every: int,
    quiet: bool,
    stop_after: int | None = None,
    dist: Dist = SINGLE,
) -> RunResult:
    """Train `task` to its last epoch, resuming from `resume_path` if it holds a checkpoint of this run.

    Writes a resume checkpoint every `checkpoint_every` steps and at each epoch's end, keeps the
    stage's record up to date (epoch, metrics, wall time), and on SIGINT/SIGTERM (or after
    `stop_after` steps in this process, or DDREAM_STOP_AFTER_STEPS, which tests use) writes a last
    checkpoint and raises Interrupted. Under torchrun every rank runs this loop in step; only rank 0
    writes, and stop requests and non-finite losses are agreed on by all ranks.
    """
    quiet = quiet or not dist.main
    # Two hooks for the fault tests, which drive the real CLI: stop after N steps, slow each step.
    if stop_after is None and os.environ.get("DDREAM_STOP_AFTER_STEPS"):
        stop_after = int(os.environ["DDREAM_STOP_AFTER_STEPS"])
    step_delay = float(os.environ.get("DDREAM_STEP_DELAY", "0"))
    steps_per_epoch = task.n_train // task.batch_size
    if steps_per_epoch < 1:
        raise BadInput(
            f"batch size {task.batch_size} is larger than the {task.n_train} training "
            "images; lower --batch-size"
        )
    config_fp = record["inputs"]["config"]
    result = RunResult()
    epoch, step_in_epoch, global_step, prior_wall = 0, 0, 0, 0.0
    if resume_path.exists():
        tensors, meta = load_tensors(resume_path)
        if meta.get("config") != config_fp or meta.get("inputs") != record["inputs"]:
            raise DDreamError(
                f"{resume_path} belongs to a run with other settings or inputs; rerun "
                "with the same options, or with --force to start afresh"
            )
        task.load_state(tensors, meta)
        epoch, step_in_epoch = meta["epoch"], meta["step_in_epoch"]
        global_step, prior_wall = meta["global_step"], meta["wall_time"]
        result.history = meta["history"]
        result.resumed_from = global_step

    t0 = time.perf_counter()
    images_done = 0

    def save_checkpoint(ep: int, sie: int) -> None:
        tensors = task.state()
        bad = [
            k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()
        ]
        if dist.any(bool(bad)):
            raise DDreamError(
                f"{stage}: training diverged (non-finite values in {bad[0] if bad else 'another rank'}); the last "
                f"good checkpoint {resume_path.name} is kept: lower --lr and rerun"
            )
        meta = {
            "config": config_fp,
            "inputs": record["inputs"],
            "epoch": ep,
            "step_in_epoch": sie,
            "global_step": global_step,
            "history": result.history,
            "wall_time": prior_wall + time.perf_counter() - t0,
            **task.meta(),
        }
        if not dist.main:
            return
        save_tensors(resume_path, tensors, meta)
        record["epoch"], record["wall_time"] = ep, meta["wall_time"]
        record["metrics"] = result.history[-1] if result.history else {}
        record["history"] = result.history
        state.write_record(stage, record)

    steps_this_process = 0
    with (
        stop_on_signals() as flag,
        Progress(stage, task.total_epochs, steps_per_epoch, quiet) as bar,
    ):
        if result.resumed_from:
            bar.note(
                f"{stage}: resuming at epoch {epoch + 1}, step {step_in_epoch} "
                f"(global step {global_step})"
            )
        while epoch < task.total_epochs:
            order = torch.randperm(task.n_train, generator=seeded(seed, "order", epoch))
            bar.start_epoch(epoch, step_in_epoch)
            losses: dict[str, torch.Tensor] = {}
            for s in range(step_in_epoch, steps_per_epoch):
                idx = order[s * task.batch_size : (s + 1) * task.batch_size]
                losses = task.step(epoch, global_step, idx)
                if step_delay:
                    time.sleep(step_delay)
                global_step += 1
                steps_this_process += 1
                images_done += len(idx)
                refresh = s % 10 == 0 or s == steps_per_epoch - 1
                info = None
                if refresh:  # .item() only here: it waits for the device
                    values = {k: v.item() for k, v in losses.items()}
                    if dist.any(not all(math.isfinite(v) for v in values.values())):
                        raise DDreamError(
                            f"{stage}: loss became {values} at step {global_step}; the last "
                            f"good checkpoint {resume_path.name} is kept: lower --lr and rerun"
                        )
                    info = "  ".join(f"{k} {v:.4f}" for k, v in values.items())
                bar.step(s + 1, info)
                stopping = dist.any(
                    bool(flag.signum)
                    or (stop_after is not None and steps_this_process >= stop_after)
                )
                if stopping and s + 1 < steps_per_epoch:
                    save_checkpoint(epoch, s + 1)
                    _raise_interrupted(stage, flag.signum)
                if global_step % checkpoint_every == 0 and s + 1 < steps_per_epoch:
                    save_checkpoint(epoch, s + 1)
            metrics = task.evaluate()
            metrics["epoch"] = epoch + 1
            result.history.append(metrics)
            elapsed = time.perf_counter() - t0
            rate = images_done / elapsed if elapsed > 0 else 0.0
            left = (task.total_epochs - epoch - 1) * steps_per_epoch * task.batch_size
            bar.end_epoch(
                epoch,
                task.describe({k: v.item() for k, v in losses.items()}, metrics)
                + f"  {rate:.0f} img/s",
                left / rate if rate else 0.0,
            )
            epoch, step_in_epoch = epoch + 1, 0
            save_checkpoint(epoch, 0)
            stopping = dist.any(
                bool(flag.signum) or (stop_after is not None and steps_this_process >= stop_after)
            )
            if stopping and epoch < task.total_epochs:
                _raise_interrupted(stage, flag.signum)

    elapsed = time.perf_counter() - t0
    result.wall_time = prior_wall + elapsed
    result.images_per_s = images_done / elapsed if elapsed > 0 else 0.0
    return result


def _raise_interrupted(stage: str, signum: int) -> None:
    name = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}.get(signum, "a stop request")
    raise Interrupted(
        f"{stage}: stopped by {name}; progress saved, rerun the same command to resume",
        signum or signal.SIGINT,
    )


# ---- a training stage's record ---------------------------------------------------------------------
def open_stage(
    state: StateDir,
    stage: str,
    config: dict[str, Any],
    inputs: dict[str, str],
    total_epochs: int,
    resume: Path | None,
    *,
    force: bool,
    discard_stale: bool,
    dist: Dist = SINGLE,
) -> dict[str, Any] | None:
    """The record to train under, or None when the stage is done and fresh (nothing to do).

    A resume checkpoint of other inputs is dropped with --force, or by `all` (discard_stale);
    otherwise `run_training` refuses it with a clear line. Under torchrun rank 0 decides and writes;
    the other ranks then read what it wrote.
    """
    if dist.world > 1:
        record = (
            _open_stage(state, stage, config, inputs, total_epochs, resume, force, discard_stale)
            if dist.main
            else None
        )
        dist.barrier()
        if not dist.main:
            record = state.record(stage)
            skip = record["status"] == "done" and record["inputs"] == inputs
            return None if skip else record
        return record
    return _open_stage(state, stage, config, inputs, total_epochs, resume, force, discard_stale)


def _open_stage(
    state: StateDir,
    stage: str,
    config: dict[str, Any],
    inputs: dict[str, str],
    total_epochs: int,
    resume: Path | None,
    force: bool,
    discard_stale: bool,
) -> dict[str, Any] | None:
    record = state.record(stage)
    same = bool(record) and record.get("inputs") == inputs
    if (
        same
        and record.get("status") == "done"
        and not force
        and state.verify_outputs(record) is None
    ):
        return None
    if resume is not None and resume.exists() and (force or (discard_stale and not same)):
        resume.unlink()
    if same and record.get("status") == "running":
        return record
    return state.start_record(stage, config, inputs, total_epochs)


def close_stage(
    state: StateDir,
    stage: str,
    record: dict[str, Any],
    result: RunResult,
    resume: Path,
    *,
    model_path: Path,
    weights: dict[str, torch.Tensor],
    meta: dict[str, Any],
    more_outputs: dict[str, tuple[Path, dict[str, torch.Tensor], dict[str, Any]]] | None = None,
    notes: dict[str, Any] | None = None,
    dist: Dist = SINGLE,
) -> dict[str, Any]:
    """Write the trained weights (the `model` output, and any `more_outputs` as name -> (path,
    weights, metadata)), mark the stage done with its outputs hashed (and `notes` added to its
    record), drop the resume checkpoint. Under torchrun rank 0 does it while the others wait."""
    if not dist.main:
        dist.barrier()
        return {"skipped": False, "metrics": {}}
    outputs = {"model": model_path}
    save_tensors(model_path, weights, meta)
    for name, (path, tensors, file_meta) in (more_outputs or {}).items():
        save_tensors(path, tensors, file_meta)
        outputs[name] = path
    record.update(notes or {})
    record["metrics"] = {
        **(result.history[-1] if result.history else {}),
        "images_per_s": round(result.images_per_s, 1),
    }
    record["history"] = result.history
    record["wall_time"] = round(result.wall_time, 2)
    record["epoch"] = record["epochs"]
    state.finish_record(stage, record, outputs)
    resume.unlink(missing_ok=True)
    dist.barrier()
    return {
        "skipped": False,
        "metrics": record["metrics"],
        "wall_time": record["wall_time"],
        "model": str(model_path),
    }
