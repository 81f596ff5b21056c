"""A training stage's record in state.json: open it (or learn that the stage is done and fresh), and
close it once the weights are written and hashed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ddream.checkpoint import save_tensors
from ddream.distributed import SINGLE, Dist
from ddream.state import StateDir
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
