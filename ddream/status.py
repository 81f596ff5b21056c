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


# where each settings table of a trained state dir is recorded: stage -> {table: key in its config}
RECORDED_TABLES = {
    "ae": {"ae": "model", "ae_train": "train"},
    "dit": {"dit": "model", "dit_train": "train", "sample": "sample"},
    "distill": {"distill": "distill"},
}


def recorded_profile(state: StateDir, base: Any) -> tuple[Any, list[str]]:
    """`base` (a config.Profile) with the settings the state dir's finished stages were trained
    with, and the names of the tables that came from the state dir."""
    import dataclasses

    from ddream.config import SECTIONS, from_dict

    changes: dict[str, Any] = {}
    for stage, tables in RECORDED_TABLES.items():
        view = state.view(stage)  # done and finished, or the finished one a newer run replaces
        rec = view.record or {}
        if view.status not in ("done", "stale", "corrupt"):
            continue
        for table, key in tables.items():
            if key in rec.get("config", {}):
                changes[table] = from_dict(SECTIONS[table], rec["config"][key])
    return dataclasses.replace(base, **changes), list(changes)
