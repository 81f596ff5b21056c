"""`ddream status`: each stage done / partial / stale / missing / corrupt, with its metrics, size and wall
time, read from state.json and the files alone. Imports no torch, so it answers at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ddream.history import load_history
from ddream.registry import STAGE, STAGE_TABLE, STAGES
from ddream.state import StateDir


@dataclass
class StageRow:
    stage: str
    status: str
    detail: str
    metrics: str
    size_bytes: int
    wall_time: float
    best: str = ""  # the best epoch and its figures (history.py), for the stages that train


def _metrics_text(stage: str, rec: dict[str, Any] | None) -> str:
    metrics = (rec or {}).get("metrics")
    return STAGE[stage].describe(metrics) if isinstance(metrics, dict) else ""


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
                best_epoch(state, stage),
            )
        )
    return rows


def best_epoch(state: StateDir, stage: str) -> str:
    """'9/10 (val_loss 0.5012)': the stage's best epoch by its registry rule, if it has one."""
    hist = load_history(state, stage)
    found = hist.best() if hist is not None else None
    if found is None:
        return ""
    row, name = found
    total = hist.header.get("epochs") or len(hist.epochs)
    return f"{row['epoch']}/{total} ({name} {row['metrics'][name]:.4g})"


def next_command(rows: list[StageRow]) -> str | None:
    """What `ddream all` would do first, as the stage command it amounts to."""
    for row in rows:
        if row.status != "done":
            return f"ddream {STAGE[row.stage].command}"
    return None


def recorded_profile(state: StateDir, base: Any) -> tuple[Any, list[str]]:
    """`base` (a config.Profile) with the settings the state dir's finished stages were trained
    with, and the names of the tables that came from the state dir."""
    import dataclasses

    from ddream.config import SECTIONS, from_dict

    changes: dict[str, Any] = {}
    for stage in STAGE_TABLE:
        view = state.view(stage.name)  # done and finished, or the finished one a newer run replaces
        rec = view.record or {}
        if view.status not in ("done", "stale", "corrupt"):
            continue
        for table, key in stage.tables:
            if key in rec.get("config", {}):
                changes[table] = from_dict(SECTIONS[table], rec["config"][key])
    return dataclasses.replace(base, **changes), list(changes)
