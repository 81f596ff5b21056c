"""An exported model folder's manifest (`ddream export`): the stage records it carries and the sha256
of every file in it, so that a reader trusts the folder, or refuses it naming the file, without the
state dir it came from. An exported folder is a read-only state dir: manifest.json stands where
state.json would."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from ddream.errors import DDreamError
from ddream.files import atomic_write_bytes, sha256_file

MANIFEST = "manifest.json"
KIND = "ddream-export"
FORMAT = 1


def is_export(root: Path) -> bool:
    """A folder that `ddream export` wrote (a manifest, no state.json)."""
    return (root / MANIFEST).is_file() and not (root / "state.json").exists()


def write_manifest(folder: Path, stages: dict[str, Any], about: dict[str, Any]) -> dict[str, Any]:
    """List every file under `folder` with its sha256 (the manifest itself aside), beside the stage
    records that say what each model file is; written last, atomically."""
    files = {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {"kind": KIND, "format": FORMAT, **about, "stages": stages, "files": files}
    atomic_write_bytes(folder / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of an exported folder, after checking every file it lists against its sha256."""
    path = root / MANIFEST
    again = "export the model again (`ddream export`)"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise DDreamError(f"{path} is not readable JSON; {again}") from None
    if (
        not isinstance(data, dict)
        or data.get("kind") != KIND
        or not isinstance(data.get("files"), dict)
        or not isinstance(data.get("stages"), dict)
    ):
        raise DDreamError(f"{path} is not a ddream export manifest; {again}")
    if not isinstance(data.get("format"), int) or data["format"] > FORMAT:
        raise DDreamError(f"{path} was written by a newer ddream; upgrade ddream to use it")
    for name, sha in data["files"].items():
        rel = PurePosixPath(str(name))
        if rel.is_absolute() or ".." in rel.parts:
            raise DDreamError(f"{path} names a file outside its folder ({name}); {again}")
        file = root / rel
        if not file.is_file():
            raise DDreamError(f"{file} is missing from the exported folder; {again}")
        if sha256_file(file) != sha:
            raise DDreamError(
                f"{file} does not match the export's manifest (sha256): it changed after the "
                f"export; restore it or {again}"
            )
    for stage, record in data["stages"].items():
        outputs = record.get("outputs") if isinstance(record, dict) else None
        if not isinstance(outputs, dict) or not all(
            isinstance(o, dict) and data["files"].get(o.get("path")) == o.get("sha256")
            for o in outputs.values()
        ):
            raise DDreamError(f"{path}: the {stage} record names files the manifest does not")
    return data
