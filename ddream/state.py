"""The state directory: where each stage's artifacts live, one state.json of records, a lock, atomic writes.

A record says `done` only after its outputs are on disk and hashed. Freshness is derived, never stored:
a record is fresh when the files it names still hash to what it recorded and its inputs still match
what the stage it depends on produced.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddream.errors import BadInput, DDreamError, StateBusy
from ddream.files import atomic_write_bytes, sha256_bytes, sha256_file
from ddream.manifest import is_export, read_manifest
from ddream.record_check import AFRESH, record_problem
from ddream.registry import STAGE
from ddream.version import __version__

STATE_FORMAT = 1


def versions() -> dict[str, str]:
    import torch

    return {"ddream": __version__, "torch": torch.__version__, "python": platform.python_version()}


@dataclass
class StageView:
    """What `status` and `all` need to know of one stage, derived from its record and the disk."""

    name: str
    status: str  # done | partial | stale | missing | corrupt
    detail: str
    record: dict[str, Any] | None  # for a stage in progress: the finished one readers use, if any
    interrupted: bool = False  # done, but a newer run of it stopped before it was complete


class StateDir:
    """One experiment's folder: paths, the state.json records, and the writer's lock."""

    def __init__(self, root: Path | str, redo: str | None = None) -> None:
        """`redo`: the stage a forced command is about to train again; a damaged record of it is
        dropped as the file is read (the advice every other damaged record's message gives)."""
        self.root = Path(root)
        self.redo = redo
        self._lock_fd: int | None = None
        self._manifest: dict[str, Any] | None = None

    @property
    def exported(self) -> bool:
        """A folder `ddream export` wrote: read-only, its records in manifest.json."""
        return is_export(self.root)

    # ---- paths -------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "state.lock"

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def output_path(self, stage: str, output: str) -> Path:
        """Where a stage's output lives (registry.py names every file)."""
        return self.root / next(o.path for o in STAGE[stage].outputs if o.name == output)

    # ---- lock --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, command: str) -> Iterator[StateDir]:
        """Hold the writer's lock for the duration; a second writer gets one line naming the holder.

        flock is released by the kernel when the holder dies, so a lock left by a killed process is
        simply taken over.
        """
        if self.exported:
            raise BadInput(
                f"{self.root} is an exported model folder, read-only; train in a state dir"
            )
        created = not self.root.exists()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BadInput(f"cannot create state dir {self.root}: {e.strerror}") from None
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StateBusy(
                f"state dir {self.root} is in use by {holder}; wait for it or use "
                "another --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} (ddream {command})\n".encode())
        self._lock_fd = fd
        refused = False
        try:
            yield self
        except DDreamError as e:
            refused = created and e.exit_code in (1, 2)  # refused, not interrupted (130, 143)
            raise
        finally:
            self._lock_fd = None
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            if refused:
                self._remove_if_empty()

    def _remove_if_empty(self) -> None:
        """A command refused on a state dir it created leaves nothing behind: no lock, no
        state.json holding only the options of the refused run, no empty folder."""
        if self.state_file.exists() and self.read()["stages"]:
            return
        self.state_file.unlink(missing_ok=True)
        self.lock_file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.root.rmdir()  # only if nothing else was written

    # ---- records -----------------------------------------------------------------------------
    def read(self) -> dict[str, Any]:
        if self.exported:  # every file checked against the manifest, once
            if self._manifest is None:
                self._manifest = read_manifest(self.root)
            return {"format": STATE_FORMAT, "stages": self._manifest["stages"]}
        if not self.state_file.exists():
            return {"format": STATE_FORMAT, "stages": {}}
        try:
            data = json.loads(self.state_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise DDreamError(
                f"{self.state_file} is not valid JSON; move it away to start afresh"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
            raise DDreamError(f"{self.state_file} is not a ddream state file")
        fmt = data.get("format", 0)
        if not isinstance(fmt, int) or isinstance(fmt, bool):
            raise DDreamError(f"{self.state_file}: 'format' is {fmt!r}, not a number; {AFRESH}")
        if fmt > STATE_FORMAT:
            raise DDreamError(
                f"{self.state_file} was written by a newer ddream (format "
                f"{data['format']}); upgrade ddream to use it"
            )
        for stage, record in list(data["stages"].items()):
            problem = record_problem(stage, record)
            if problem and stage == self.redo:
                del data["stages"][stage]  # trained again: the next write leaves it out
            elif problem:
                redo = (
                    f"`ddream {STAGE[stage].command} --force` to train it again"
                    if stage in STAGE
                    else ""
                )
                raise DDreamError(
                    f"{self.state_file}: the {stage} record {problem}; mend it, or run "
                    + (redo or "nothing: move the file away to start afresh")
                )
        return data

    def record(self, stage: str) -> dict[str, Any] | None:
        return self.read()["stages"].get(stage)

    def write_record(self, stage: str, record: dict[str, Any]) -> None:
        data = self.read()
        data["format"] = STATE_FORMAT
        data["stages"][stage] = record
        atomic_write_bytes(self.state_file, (json.dumps(data, indent=2) + "\n").encode())

    def write_run(self, command: str, options: dict[str, Any]) -> None:
        """Remember the last training command and its effective options (shown by `status`)."""
        data = self.read()
        data["format"] = STATE_FORMAT
        data["run"] = {
            "command": command,
            "options": options,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_bytes(self.state_file, (json.dumps(data, indent=2) + "\n").encode())

    def write_seconds(
        self,
        table: dict[str, float],
        details: dict[str, dict[str, float]],
        peak_mib: dict[str, float] | None = None,
    ) -> None:
        """Keep where the last `ddream all`'s seconds went (its parts sum to its whole), and the
        process's peak memory after each part, in its run record, beside the command and options
        `write_run` keeps."""
        data = self.read()
        data["format"] = STATE_FORMAT
        run = data.get("run") if isinstance(data.get("run"), dict) else {}
        data["run"] = {**run, "seconds": table, "seconds_detail": details}
        if peak_mib:
            data["run"]["peak_rss_mib"] = peak_mib
        atomic_write_bytes(self.state_file, (json.dumps(data, indent=2) + "\n").encode())

    def drop_record(self, stage: str) -> None:
        data = self.read()
        if data["stages"].pop(stage, None) is not None:
            atomic_write_bytes(self.state_file, (json.dumps(data, indent=2) + "\n").encode())

    def start_record(
        self, stage: str, config: dict[str, Any], inputs: dict[str, str], total_epochs: int
    ) -> dict[str, Any]:
        record = {
            "status": "running",
            "config": config,
            "inputs": inputs,
            "outputs": {},
            "metrics": {},
            "epoch": 0,
            "epochs": total_epochs,
            "wall_time": 0.0,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": versions(),
            "argv": sys.argv[1:],
        }
        # The finished model this run will replace stays usable until the new one is complete:
        # readers fall back to it while this record is not done (see `view`).
        old = self.record(stage) or {}
        previous = old if old.get("status") == "done" else old.get("previous")
        if previous:
            record["previous"] = {k: v for k, v in previous.items() if k != "history"}
        self.write_record(stage, record)
        return record

    def finish_record(self, stage: str, record: dict[str, Any], outputs: dict[str, Path]) -> None:
        """Mark the record done with its outputs, hashed now."""
        hashed = {
            name: {"path": self._rel(p), "sha256": sha256_file(p)} for name, p in outputs.items()
        }
        self._close_record(stage, record, hashed)

    def install_outputs(
        self, stage: str, record: dict[str, Any], files: dict[str, tuple[Path, bytes]]
    ) -> None:
        """Put a finished run's files in place and mark its record done, so that at every instant
        a reader finds a whole model, the previous one or the new one: the new files' sha256 go
        into the record first ("closing"), then the files (each atomically), then the done record."""
        record["closing"] = {
            name: {"path": self._rel(path), "sha256": sha256_bytes(data)}
            for name, (path, data) in files.items()
        }
        self.write_record(stage, record)
        for path, data in files.values():
            atomic_write_bytes(path, data)
        self._close_record(stage, record, record["closing"])

    def _close_record(self, stage: str, record: dict[str, Any], outputs: dict[str, Any]) -> None:
        record["outputs"] = outputs
        record["status"] = "done"
        record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        record.pop("previous", None)
        record.pop("closing", None)
        self.write_record(stage, record)

    def _rel(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def output_sha(self, stage: str, name: str) -> str | None:
        view = self.view(stage)
        if view.status != "done":
            return None
        return view.record["outputs"].get(name, {}).get("sha256")

    # ---- derived views ------------------------------------------------------------------------
    def verify_outputs(self, record: dict[str, Any]) -> str | None:
        """None when every output file hashes to its recorded sha256, else what is wrong."""
        for name, out in record.get("outputs", {}).items():
            p = self.root / out["path"]
            if not p.exists():
                return f"{out['path']} is missing"
            if sha256_file(p) != out["sha256"]:
                return f"{out['path']} does not match its recorded sha256 ({name})"
        return None

    def view(self, stage: str) -> StageView:
        """Done, partial, stale, missing or corrupt, derived from the records and files now on disk."""
        data = self.read()["stages"]
        rec = data.get(stage)
        if rec is None:
            return StageView(
                stage, "missing", "not exported" if self.exported else "not run yet", None
            )
        newer = ""
        if rec.get("status") != "done":
            run = f"epoch {rec.get('epoch', 0)} of {rec.get('epochs', '?')}"
            usable = self._usable(rec)
            if usable is None:
                return StageView(stage, "partial", run, rec)
            if usable is rec.get("previous"):
                newer = f"a newer run stopped at {run}; `ddream {STAGE[stage].command}` resumes it"
            rec = usable
        problem = self.verify_outputs(rec)
        if problem:
            return StageView(stage, "corrupt", problem, rec)
        upstream = STAGE[stage].upstream
        if upstream and not self.exported:  # an export carries its models, not their inputs
            up_stage, up_output = upstream
            up = self.view(up_stage)
            finished = up.record if up.status in ("done", "corrupt", "stale") else None
            up_sha = finished and finished["outputs"].get(up_output, {}).get("sha256")
            if rec["inputs"].get(up_stage) != up_sha:
                return StageView(stage, "stale", f"made from an older {up_stage} output", rec)
            # A corrupt or deleted upstream file does not spoil what was made from it (the record
            # still names the sha256 it was made from): a DiT samples without the latents files.
            if up.status not in ("done", "corrupt"):
                return StageView(stage, "stale", f"{up_stage} is not done and fresh", rec)
        return StageView(stage, "done", newer, rec, bool(newer))

    def _usable(self, rec: dict[str, Any]) -> dict[str, Any] | None:
        """The finished model a record not done still offers: its new files when they were all put
        in place before the record was closed, else the model it is replacing, if whole."""
        closing, previous = rec.get("closing"), rec.get("previous")
        if closing and self.verify_outputs({"outputs": closing}) is None:
            return {**rec, "status": "done", "outputs": closing}
        if previous and previous.get("outputs") and self.verify_outputs(previous) is None:
            return previous
        return None
