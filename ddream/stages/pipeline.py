"""`ddream all` and `ddream status`: the stages in order, each skipped when done and fresh, resumed when
interrupted, redone when stale; and the table that says which is which."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ddream.config import Profile
from ddream.render import check_output
from ddream.stages.distill import distill
from ddream.stages.encode import encode
from ddream.stages.sample import SampleRequest, sample
from ddream.stages.train_ae import train_ae
from ddream.stages.train_dit import train_dit
from ddream.state import STAGES, StateDir

STAGE_COMMANDS = {"ae": "train-ae", "encode": "encode", "dit": "train-dit", "distill": "distill"}


@dataclass
class StageRow:
    stage: str
    status: str
    detail: str
    metrics: str
    size_bytes: int
    wall_time: float


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
    stop_after: int | None = None,
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
            stop_after=stop_after,
        ),
        "encode": lambda: encode(state, data_dir=data_dir, device=device, quiet=quiet),
        "dit": lambda: train_dit(
            state,
            profile.dit,
            profile.dit_train,
            device=device,
            seed=seed,
            quiet=quiet,
            sample_cfg=profile.sample,
            discard_stale=True,
            stop_after=stop_after,
        ),
        "distill": lambda: distill(
            state,
            profile.distill,
            device=device,
            seed=seed,
            quiet=quiet,
            discard_stale=True,
            stop_after=stop_after,
        ),
    }
    for stage in STAGES:
        view = state.view(stage)
        say(f"{stage}: {view.status}{' (' + view.detail + ')' if view.detail else ''}")
        result = runs[stage]()
        say(f"{stage}: {'already done, skipped' if result['skipped'] else 'done'}")
        summary[stage] = result
    req = SampleRequest(seed=seed)  # the student, at its own defaults
    grid_path = check_output(state.path("samples.png"), ".png", "grid")
    gif_path = check_output(state.path("samples.gif"), ".gif", "gif")
    summary["sample"] = sample(
        state, req, device=device, grid_path=grid_path, gif_path=gif_path, npz_path=None
    )
    return summary


def _metrics_text(stage: str, rec: dict[str, Any] | None) -> str:
    if not rec:
        return ""
    m = rec.get("metrics") or {}
    if stage == "ae" and "test_psnr" in m:
        return f"test PSNR {m['test_psnr']:.2f} dB"
    if stage == "encode" and "train" in m:
        return f"{m['train']} + {m['test']} latents {tuple(m['latent_shape'])}"
    if stage == "dit" and "val_loss" in m:
        return f"val loss {m['val_loss']:.4f}"
    if stage == "distill" and "val_mse" in m:
        text = f"1-step mse {m['val_mse']:.4f}"
        return text + (f", decoder {m['decoder_psnr']:.2f} dB" if "decoder_psnr" in m else "")
    return ""


def status_rows(state: StateDir) -> list[StageRow]:
    rows = []
    for stage in STAGES:
        view = state.view(stage)
        rec = view.record or {}
        size = sum(
            (state.root / o["path"]).stat().st_size
            for o in rec.get("outputs", {}).values()
            if (state.root / o["path"]).exists()
        )
        rows.append(
            StageRow(
                stage,
                view.status,
                view.detail,
                _metrics_text(stage, view.record),
                size,
                float(rec.get("wall_time", 0.0)),
            )
        )
    return rows


def next_command(rows: list[StageRow]) -> str | None:
    """What `ddream all` would do first, as the stage command it amounts to."""
    for row in rows:
        if row.status != "done":
            return f"ddream {STAGE_COMMANDS[row.stage]}"
    return None
