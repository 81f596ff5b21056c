"""`ddream status`: each stage done / partial / stale / missing / corrupt, with its metrics, size and wall
time, read from state.json and the files alone. Imports no torch, so it answers at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ddream.state import STAGE, STAGES, StateDir


@dataclass
class StageRow:
    stage: str
    status: str
    detail: str
    metrics: str
    size_bytes: int
    wall_time: float


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
            return f"ddream {STAGE[row.stage].command}"
    return None
