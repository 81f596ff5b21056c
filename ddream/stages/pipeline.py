"""`ddream all`: the stages in order, each skipped when done and fresh, resumed when interrupted,
redone when stale, then a sample grid and GIF in the state dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ddream.config import Profile
from ddream.progress import PLAN, REFERENCE_SECONDS, Plan
from ddream.render import check_output
from ddream.sampler import SampleRequest
from ddream.stages.distill import distill
from ddream.stages.encode import encode
from ddream.stages.sample import sample
from ddream.stages.train_ae import train_ae
from ddream.stages.train_dit import train_dit
from ddream.state import STAGES, StateDir


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
    runs = {
        "ae": lambda: train_ae(
            state,
            profile.ae,
            profile.ae_train,
            data_dir=data_dir,
            dataset=dataset,
            device=device,
            seed=seed,
            quiet=quiet,
            discard_stale=True,
        ),
        "encode": lambda: encode(state, data_dir=data_dir, device=device),
        "dit": lambda: train_dit(
            state,
            profile.dit,
            profile.dit_train,
            device=device,
            seed=seed,
            quiet=quiet,
            sample_cfg=profile.sample,
            discard_stale=True,
        ),
        "distill": lambda: distill(
            state,
            profile.distill,
            device=device,
            seed=seed,
            quiet=quiet,
            discard_stale=True,
        ),
    }
    plan = whole_run(state, profile)
    token = PLAN.set(plan)
    try:
        for i, stage in enumerate(STAGES, 1):
            view = state.view(stage)
            detail = f" ({view.detail})" if view.detail else ""
            say(f"[{i}/{len(STAGES)}] {stage}: {view.status}{detail}; {plan.text(stage)}")
            result = runs[stage]()
            say(f"{stage}: {'already done, skipped' if result['skipped'] else 'done'}")
            plan.finished(stage, 0.0 if result["skipped"] else result.get("wall_time", 0.0))
            summary[stage] = result
    finally:
        PLAN.reset(token)
    req = SampleRequest(seed=seed)  # the student, at its own defaults
    grid_path = check_output(state.path("samples.png"), ".png", "grid")
    gif_path = check_output(state.path("samples.gif"), ".gif", "gif")
    summary["sample"] = sample(
        state, req, device=device, grid_path=grid_path, gif_path=gif_path, npz_path=None
    )
    return summary


def whole_run(state: StateDir, profile: Profile) -> Plan:
    """The work of each stage still to do, in development-machine seconds (REFERENCE_SECONDS)."""
    sec = REFERENCE_SECONDS
    images = profile.ae_train.train_limit or 60_000  # MNIST-like training split
    tests = profile.ae_train.test_limit or 10_000
    ae, dit, dis = profile.ae_train, profile.dit_train, profile.distill
    pairs = min(dis.train_limit or dis.pairs, dis.pairs)
    expected = {
        "ae": (ae.epochs + ae.finetune_epochs) * images * sec["ae"],
        "encode": (images + tests) * sec["encode"],
        "dit": dit.epochs * (dit.train_limit or images) * sec["dit"],
        "distill": dis.pairs * dis.teacher_steps * sec["pairs"]
        + dis.epochs * pairs * sec["distill"],
    }
    for stage in expected:
        view = state.view(stage)
        if view.status == "done" and not view.interrupted:  # an interrupted rerun resumes
            expected[stage] = 0.0
    return Plan(expected)
