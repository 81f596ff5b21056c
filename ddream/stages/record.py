"""A training stage's record in state.json: open it (or learn that the stage is done and fresh),
close it once the weights are written and hashed, and `StageRun`, which does both around the
training loop for every training stage."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ddream.checkpoint import tensor_bytes
from ddream.config import LogConfig
from ddream.distributed import SINGLE, Dist
from ddream.state import StateDir

if TYPE_CHECKING:  # the loop itself is imported only by a stage that trains (encode does not)
    from ddream.train import RunResult


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

    def decide() -> dict[str, Any] | None:
        record = state.record(stage)
        same = bool(record) and record.get("inputs") == inputs
        if same and record.get("status") == "done" and not force:
            if state.verify_outputs(record) is None:
                return None
        if resume is not None and resume.exists() and (force or (discard_stale and not same)):
            resume.unlink()
        if same and record.get("status") == "running":
            return record
        return state.start_record(stage, config, inputs, total_epochs)

    if dist.world == 1:
        return decide()
    record = decide() if dist.main else None
    dist.barrier()
    if dist.main:
        return record
    record = state.record(stage)
    return None if record["status"] == "done" and record["inputs"] == inputs else record


@dataclass(frozen=True)
class PipelineRun:
    """What `ddream all` hands every stage's `run_stage` (registry.py names each stage's module)."""

    state: StateDir
    profile: Any  # config.Profile
    data_dir: Path | None
    dataset: str
    device: torch.device
    seed: int
    quiet: bool


Files = dict[str, tuple[Path, dict[str, torch.Tensor], dict[str, Any]]]


def close_stage(
    state: StateDir,
    stage: str,
    record: dict[str, Any],
    result: RunResult,
    resume: Path,
    files: Files,
    notes: dict[str, Any] | None = None,
    dist: Dist = SINGLE,
) -> dict[str, Any]:
    """Write the trained weights (`files`: output name -> (path, weights, metadata), "model" first),
    mark the stage done with its outputs hashed (and `notes` added to its record), drop the resume
    checkpoint. Under torchrun rank 0 does it while the others wait."""
    if not dist.main:
        dist.barrier()
        return {"skipped": False, "metrics": {}}
    record.update(notes or {})
    record["metrics"] = {
        **(result.history[-1] if result.history else {}),
        "images_per_s": round(result.images_per_s, 1),
    }
    record["history"] = result.history
    record["wall_time"] = round(result.wall_time, 2)
    record["watch_time"] = round(result.watch_time, 2)  # of it: history, snapshots, TensorBoard
    record["epoch"] = record["epochs"]
    written = {name: (path, tensor_bytes(t, meta)) for name, (path, t, meta) in files.items()}
    state.install_outputs(stage, record, written)
    resume.unlink(missing_ok=True)
    dist.barrier()
    return {
        "skipped": False,
        "metrics": record["metrics"],
        "wall_time": record["wall_time"],
        "model": str(files["model"][0]),
    }


@dataclass
class StageRun:
    """One training stage run as every stage runs: open its record (skip when done and fresh),
    build the task, train it with resume checkpoints, close the record with the task's files."""

    state: StateDir
    stage: str
    folder: str
    seed: int
    quiet: bool
    force: bool = False
    discard_stale: bool = False
    dist: Dist = SINGLE
    log: LogConfig | None = None  # history points, snapshots, TensorBoard (ddream/watch.py)

    def train(
        self,
        config: dict[str, Any],
        inputs: dict[str, str],
        epochs: int,
        checkpoint_every: int,
        make_task: Callable[[], Any],
        files: Callable[[Any, RunResult], tuple[Files, dict[str, Any] | None]],
    ) -> dict[str, Any]:
        """`make_task()` builds the Task (only when there is training to do); `files(task,
        result)` names the outputs to write and any notes for the record."""
        state, stage, dist = self.state, self.stage, self.dist
        resume = state.path(self.folder, "resume.safetensors")
        record = open_stage(
            state, stage, config, inputs, epochs, resume,
            force=self.force, discard_stale=self.discard_stale, dist=dist,
        )  # fmt: skip
        if record is None:
            return {"skipped": True, "metrics": state.record(stage)["metrics"]}
        from ddream.train import run_training

        t0 = time.perf_counter()
        task = make_task()  # its inputs loaded and made (distill: the teacher's pairs, the judges)
        # the record accounts for it beside the loop's wall time (a resumed run: its last process's)
        record["setup_time"] = round(time.perf_counter() - t0, 2)
        result = run_training(
            task, stage=stage, state=state, record=record, resume_path=resume, seed=self.seed,
            checkpoint_every=checkpoint_every, quiet=self.quiet, dist=dist, log=self.log,
        )  # fmt: skip
        t1 = time.perf_counter()
        outputs, notes = files(task, result)
        done = close_stage(state, stage, record, result, resume, outputs, notes, dist)
        done["parts"] = {
            "setup": record["setup_time"],
            "training": round(result.elapsed, 2),
            "writing": round(time.perf_counter() - t1, 2),
        }
        return done
