"""What every training stage shares: the epoch/step loop, resume checkpoints, EMA, NaN guard, and
stopping cleanly on SIGINT/SIGTERM.

A stage describes itself as a `Task` (one optimisation step on a batch of indices, an evaluation,
and its state as tensors); `run_training` does the rest. Every random draw of a step comes from a
generator seeded by (seed, step), and every epoch's order from (seed, epoch), so a run resumed from
any checkpoint takes exactly the steps an uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from ddream.checkpoint import load_tensors, prefixed, save_tensors, split_prefix
from ddream.config import LogConfig
from ddream.distributed import SINGLE, Dist
from ddream.errors import BadInput, DDreamError, Interrupted
from ddream.progress import Progress
from ddream.runtime import seeded
from ddream.state import StateDir
from ddream.watch import Watch

# Fault injection for the tests (no sleeps or env hooks in the loop itself): each hook is called after
# every optimiser step with the steps this call has taken; one returning True asks for a clean stop,
# as SIGINT does.
STEP_HOOKS: list[Callable[[int], bool]] = []


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
        floats, live = [], []
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                floats.append(self.shadow[k])
                live.append(v.detach())
            else:
                self.shadow[k].copy_(v)
        # one multi-tensor kernel rather than one small one a tensor (the same lerp, bit for bit)
        torch._foreach_lerp_(floats, live, 1 - d)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Its weights as a resume checkpoint keeps them ("ema." before each name)."""
        return prefixed(self.shadow, "ema")

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Back to where a resume checkpoint's tensors and metadata left it."""
        self.shadow = split_prefix(tensors, "ema")
        self.updates = meta["ema_updates"]


class EMATask:
    """A task with one optimiser (`self._groups`, set by its `state()`) and an EMA of its model
    (`self.ema`): what its resume checkpoint's metadata holds."""

    def meta(self) -> dict[str, Any]:
        return {"groups": self._groups, "ema_updates": self.ema.updates}


def adamw(params: Any, lr: float, **kwargs: Any) -> torch.optim.AdamW:
    """AdamW as every training stage builds it: all of a model's parameters updated in one fused
    kernel where torch has one for the device (CPU and CUDA), the per-tensor loop elsewhere. The
    update is the same rule; on the autoencoder's step it was ~1.2x faster on a CPU in fp32
    (BENCHMARKS.md, benchmarks/train_levers.py)."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, fused=True, **kwargs)
    except (RuntimeError, TypeError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(params, lr=lr, **kwargs)


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

    # Optional: `phase(epoch, global_step) -> str` names the part of the schedule a step is in
    # (the history's epoch rows carry it); `snapshot() -> uint8 picture` draws the stage's
    # fixed-noise snapshot (ddream/watch.py).


@dataclass
class RunResult:
    history: list[dict[str, float]] = field(default_factory=list)
    wall_time: float = 0.0
    images_per_s: float = 0.0
    resumed_from: int = 0  # global step the run resumed at (0 = fresh)
    watch_time: float = 0.0  # seconds of it spent on history, snapshots and TensorBoard
    elapsed: float = 0.0  # seconds of the loop in this process (wall_time adds earlier ones)


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
    dist: Dist = SINGLE,
    log: LogConfig | None = None,
) -> RunResult:
    """Train `task` to its last epoch, resuming from `resume_path` if it holds a checkpoint of this run.

    Writes a resume checkpoint every `checkpoint_every` steps and at each epoch's end, keeps the
    stage's record up to date (epoch, metrics, wall time), and on SIGINT/SIGTERM (or a STEP_HOOKS
    request) writes a last checkpoint and raises Interrupted. Under torchrun every rank runs this loop in step; only rank 0
    writes, and stop requests and non-finite losses are agreed on by all ranks. The run's history,
    snapshots and TensorBoard events (`log`) are written before each checkpoint (ddream/watch.py).
    """
    quiet = quiet or not dist.main
    steps_per_epoch = task.n_train // task.batch_size
    if steps_per_epoch < 1:
        raise BadInput(
            f"batch size {task.batch_size} is larger than the {task.n_train} training "
            "images; lower --batch-size"
        )
    config_fp = record["inputs"]["config"]
    result = RunResult()
    epoch, step_in_epoch, global_step, prior_wall, prior_watch = 0, 0, 0, 0.0, 0.0
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
        prior_watch = meta.get("watch_time", 0.0)
        result.history = meta["history"]
        result.resumed_from = global_step

    t0 = time.perf_counter()  # the snapshot before the first epoch counts in the run's time
    header = {
        "stage": stage,
        "started": record.get("started"),
        "epochs": task.total_epochs,
        "steps_per_epoch": steps_per_epoch,
        "batch_size": task.batch_size,
    }
    snapshot = getattr(task, "snapshot", None)
    watch = Watch(
        state, stage, log or LogConfig(), header=header, snapshot=snapshot, main=dist.main
    )
    watch.begin(global_step)
    phase = getattr(task, "phase", lambda _epoch, _step: "")
    images_done = 0

    def save_checkpoint(ep: int, sie: int) -> None:
        watch.flush()  # what the checkpoint has seen is on disk before it
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
            "watch_time": prior_watch + watch.seconds,
            **task.meta(),
        }
        if not dist.main:
            return
        save_tensors(resume_path, tensors, meta)
        record["epoch"], record["wall_time"] = ep, meta["wall_time"]
        record["watch_time"] = round(meta["watch_time"], 2)
        record["metrics"] = result.history[-1] if result.history else {}
        record["history"] = result.history
        state.write_record(stage, record)

    steps_this_process, hooked = 0, False
    with (
        watch,
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
                global_step += 1
                steps_this_process += 1
                hooked = any([hook(steps_this_process) for hook in STEP_HOOKS])
                images_done += len(idx)
                refresh = s % 10 == 0 or s == steps_per_epoch - 1
                point = watch.due(global_step)
                info = None
                if refresh or point:  # .item() only here: it waits for the device
                    values = {k: v.item() for k, v in losses.items()}
                    if dist.any(not all(math.isfinite(v) for v in values.values())):
                        raise DDreamError(
                            f"{stage}: loss became {values} at step {global_step}; the last "
                            f"good checkpoint {resume_path.name} is kept: lower --lr and rerun"
                        )
                    info = "  ".join(f"{k} {v:.4f}" for k, v in values.items())
                    if point:
                        watch.point(global_step, values, prior_wall + time.perf_counter() - t0)
                bar.step(s + 1, info if refresh else None)
                stopping = dist.any(bool(flag.signum) or hooked)
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
            last = {k: v.item() for k, v in losses.items()}
            bar.end_epoch(
                epoch,
                task.describe(last, metrics) + f"  {rate:.0f} img/s",
                left / rate if rate else 0.0,
            )
            watch.epoch(
                epoch + 1, global_step, metrics, last, wall=prior_wall + elapsed,
                images_per_s=rate, phase=phase(epoch, global_step - 1),
            )  # fmt: skip
            epoch, step_in_epoch = epoch + 1, 0
            save_checkpoint(epoch, 0)
            stopping = dist.any(bool(flag.signum) or hooked)
            if stopping and epoch < task.total_epochs:
                _raise_interrupted(stage, flag.signum)

    elapsed = time.perf_counter() - t0
    result.elapsed = elapsed
    result.wall_time = prior_wall + elapsed
    result.images_per_s = images_done / elapsed if elapsed > 0 else 0.0
    result.watch_time = prior_watch + watch.seconds
    return result


def _raise_interrupted(stage: str, signum: int) -> None:
    name = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}.get(signum, "a stop request")
    raise Interrupted(
        f"{stage}: stopped by {name}; progress saved, rerun the same command to resume",
        signum or signal.SIGINT,
    )
