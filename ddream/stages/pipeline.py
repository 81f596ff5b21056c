"""`ddream all`: the stages in order, each skipped when done and fresh, resumed when interrupted,
redone when stale, then a sample grid and GIF in the state dir."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

import torch

from ddream.config import Profile
from ddream.plots import PLOTS, have_matplotlib, plot
from ddream.progress import PLAN, Ledger, Plan
from ddream.registry import STAGE_TABLE
from ddream.render import check_output
from ddream.sampler import SampleRequest
from ddream.stages.record import PipelineRun
from ddream.stages.sample import sample
from ddream.state import StateDir


def run_all(
    state: StateDir,
    profile: Profile,
    *,
    data_dir: Path | None,
    dataset: str = "mnist",
    device: torch.device,
    seed: int,
    quiet: bool,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Train-ae -> encode -> train-dit -> distill -> a sample grid and GIF in the state dir."""
    summary: dict[str, Any] = {}
    ledger = Ledger()  # every second of the run, in parts that sum to the whole
    run = PipelineRun(state, profile, data_dir, dataset, device, seed, quiet)
    plan = whole_run(state, profile)
    token = PLAN.set(plan)
    try:
        for i, row in enumerate(STAGE_TABLE, 1):
            stage, view = row.name, state.view(row.name)
            detail = f" ({view.detail})" if view.detail else ""
            say(f"[{i}/{len(STAGE_TABLE)}] {stage}: {view.status}{detail}; {plan.text(stage)}")
            with ledger.timed(stage):
                result = import_module(f"ddream.stages.{row.module}").run_stage(run)
            say(f"{stage}: {'already done, skipped' if result['skipped'] else 'done'}")
            plan.finished(stage, 0.0 if result["skipped"] else ledger.parts[stage])
            if "parts" in result:  # what the stage's own record accounts for, and the rest
                parts = result["parts"]
                rest = ledger.parts[stage] - sum(parts.values())
                ledger.details[stage] = {**parts, "loading": round(max(0.0, rest), 2)}
            summary[stage] = result
    finally:
        PLAN.reset(token)
    req = SampleRequest(seed=seed)  # the student, at its own defaults
    grid_path = check_output(state.path("samples.png"), ".png", "grid")
    gif_path = check_output(state.path("samples.gif"), ".gif", "gif")
    with ledger.timed("pictures"):
        summary["sample"] = sample(
            state, req, device=device, grid_path=grid_path, gif_path=gif_path, npz_path=None
        )
    # how it learned: the GIFs always, the curves when matplotlib is there (`ddream plot` redraws)
    with ledger.timed("plots"):
        summary["plots"] = plot(state, state.path(PLOTS), curves=have_matplotlib())
    summary["seconds"] = ledger.table()
    summary["seconds_detail"] = ledger.details
    state.write_seconds(summary["seconds"], ledger.details, ledger.peak_mib)
    return summary


PICTURES = 3.5  # development-machine seconds of what `ddream all` does beside its stages


def whole_run(state: StateDir, profile: Profile) -> Plan:
    """The work of each stage still to do, in development-machine seconds (registry.py)."""
    expected = {}
    for stage in STAGE_TABLE:
        view = state.view(stage.name)
        done = view.status == "done" and not view.interrupted  # an interrupted rerun resumes
        expected[stage.name] = 0.0 if done else stage.cost(profile)
    expected["pictures"] = PICTURES  # the samples, the plots and the interpreter's start-up
    return Plan(expected)
