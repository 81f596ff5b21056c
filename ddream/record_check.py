"""What a stage record in state.json must hold for the readers to rely on it, checked as the file is
read: the keys every record has from its start, each field's type, each output entry's path and
sha256, and, for a done record, its stage's model files (registry.py). A hand edit or damage that
breaks one is named in one line by `StateDir.read`."""

from __future__ import annotations

from typing import Any

from ddream.registry import STAGE

AFRESH = "mend it, or move the file away to start afresh"
_REQUIRED = ("status", "config", "inputs", "outputs")  # what every record has from its start
_RECORD_FIELDS = {  # what readers rely on in a record: field -> (type, what it should be)
    "status": (str, "a string"), "epoch": (int, "a whole number"), "epochs": (int, "a whole number"),
    "wall_time": ((int, float), "a number"), "previous": (dict, "a record"),
    **{name: (dict, "a table") for name in ("config", "inputs", "outputs", "metrics", "closing")},
}  # fmt: skip


def record_problem(stage: str, record: Any) -> str | None:
    """What is wrong with a (hand-edited) stage record, or None."""
    if not isinstance(record, dict):
        return "is not a table"
    missing = [field for field in _REQUIRED if field not in record]
    if missing:
        return f"lacks {', '.join(map(repr, missing))}"
    for field, (kind, what) in _RECORD_FIELDS.items():
        if field in record and (
            not isinstance(record[field], kind) or isinstance(record[field], bool)
        ):
            return f"has {field} = {record[field]!r}, not {what}"
    for table in ("outputs", "closing"):
        for name, out in record.get(table, {}).items():
            if not (
                isinstance(out, dict)
                and isinstance(out.get("path"), str)
                and isinstance(out.get("sha256"), str)
            ):
                return f"has a damaged {table} entry {name!r} (it needs a path and a sha256)"
    if stage in STAGE and record["status"] == "done":
        for out in STAGE[stage].outputs:
            if not out.optional and out.name not in record["outputs"]:
                return f"is done but names no {out.name} file among its outputs"
    return record_problem(stage, record["previous"]) if "previous" in record else None
