"""A training run's history on disk: `<stage folder>/history.jsonl`, one JSON object a line, and the
fixed-noise snapshots beside it in `<stage folder>/snapshots/epoch-NNN.png`.

The lines: a header naming the run (`"kind": "run"`), then loss points every few steps (`"point"`)
and one row per finished epoch (`"epoch"`: the held-out metrics, the phase, wall time, images/s).
Every line carries the global step it was written at. The file is only appended to while a run
goes on; a resumed run first cuts it back to its checkpoint's step (`keep_until`), so what kill -9
left past the checkpoint is written again, once, by the steps that are redone (ddream/watch.py).

Readers (`ddream plot`, `ddream status`, the page) take a state dir of an earlier release too: with
no history file, the epochs come from the stage's record in state.json (no points, no wall times).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddream.files import atomic_write_bytes
from ddream.registry import STAGE
from ddream.state import StateDir

HISTORY_FILE = "history.jsonl"
SNAPSHOT_DIR = "snapshots"


def folder(stage: str) -> str:
    """The stage's folder in the state dir (that of its first output)."""
    return STAGE[stage].outputs[0].path.split("/")[0]


def history_path(state: StateDir, stage: str) -> Path:
    return state.path(folder(stage), HISTORY_FILE)


def snapshot_dir(state: StateDir, stage: str) -> Path:
    return state.path(folder(stage), SNAPSHOT_DIR)


def snapshot_path(state: StateDir, stage: str, epoch: int) -> Path:
    return snapshot_dir(state, stage) / f"epoch-{epoch:03d}.png"


def snapshots(state: StateDir, stage: str) -> list[tuple[int, Path]]:
    """(epoch, path) of every snapshot on disk, in epoch order (epoch 0: before training)."""
    found = []
    for path in snapshot_dir(state, stage).glob("epoch-*.png"):
        try:
            found.append((int(path.stem.removeprefix("epoch-")), path))
        except ValueError:
            continue
    return sorted(found)


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Every whole line of a history file; a line cut by kill -9 (or hand-edited) is skipped."""
    rows = []
    try:
        text = path.read_text()
    except (FileNotFoundError, UnicodeDecodeError):
        return []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step", 0), int):
            rows.append(row)
    return rows


def _encode(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()


def start(path: Path, header: dict[str, Any]) -> None:
    """A new history: the header alone (a redone stage's old history goes)."""
    atomic_write_bytes(path, _encode([{"kind": "run", **header}]))


def keep_until(path: Path, step: int, header: dict[str, Any]) -> None:
    """Cut the history back to what a checkpoint at `step` has seen: rows written past it (by steps
    a resumed run takes again) go, and so does a line kill -9 cut short. A run resumed from a
    checkpoint of an earlier release (no history yet) starts one here."""
    rows = read_lines(path)
    if not rows or rows[0].get("kind") != "run":
        return start(path, {**header, "from_step": step})
    atomic_write_bytes(path, _encode([r for r in rows if r.get("step", 0) <= step]))


def append(path: Path, rows: list[dict[str, Any]]) -> None:
    """Add rows at the end, on disk before this returns (the resume checkpoint comes after)."""
    if not rows:
        return
    with open(path, "ab") as f:
        f.write(_encode(rows))
        f.flush()
        os.fsync(f.fileno())


@dataclass
class History:
    """One stage's history as readers see it."""

    stage: str
    header: dict[str, Any] = field(default_factory=dict)
    points: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    from_record: bool = False  # an earlier release's state dir: epochs only, from state.json

    @property
    def steps_per_epoch(self) -> int:
        return int(self.header.get("steps_per_epoch") or 0)

    def best(self) -> tuple[dict[str, Any], str] | None:
        """(the best epoch's row, the metric it is best by) by the stage's registry rule, if it
        names one."""
        rule = STAGE[self.stage].metric if STAGE[self.stage].names_best else None
        if not rule:
            return None
        name, direction = rule
        rows = [r for r in self.epochs if isinstance(r.get("metrics", {}).get(name), (int, float))]
        if not rows:
            return None
        pick = max if direction == "max" else min
        return pick(rows, key=lambda r: r["metrics"][name]), name


def load_history(state: StateDir, stage: str) -> History | None:
    """The stage's history: its file, else its record's epochs (an earlier release), else None."""
    rows = read_lines(history_path(state, stage))
    if rows and rows[0].get("kind") == "run":
        return History(
            stage,
            rows[0],
            [r for r in rows if r.get("kind") == "point"],
            [r for r in rows if r.get("kind") == "epoch"],
        )
    record = state.record(stage) or {}
    past = record.get("history")
    if not isinstance(past, list) or not past:
        return None
    epochs = []
    for i, metrics in enumerate(past):
        if isinstance(metrics, dict):
            values = {k: v for k, v in metrics.items() if k != "epoch"}
            epochs.append(
                {"kind": "epoch", "epoch": metrics.get("epoch", i + 1), "metrics": values}
            )
    return History(stage, {"epochs": record.get("epochs")}, [], epochs, from_record=True)
