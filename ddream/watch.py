"""What `run_training` leaves to be looked at besides the model: the history (ddream/history.py), a
fixed-noise snapshot after every epoch (and one before the first), and TensorBoard event files with
the same numbers and pictures when `[log] tensorboard` names a folder.

Resume-safe by the loop's order: rows and pictures are written before the resume checkpoint that
follows them (`flush`, called first thing by every checkpoint), and a resumed run begins by cutting
the history back to its checkpoint's step and by telling TensorBoard to purge the steps past it
(`purge_step`), which it then takes again. A fresh run starts a new history and clears the old
snapshots. Only the main rank writes. The seconds spent here are counted (`seconds`): they are the
cost of watching, which BENCHMARKS.md reports against the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ddream import history
from ddream.config import LogConfig
from ddream.data import model_to_uint8
from ddream.errors import BadInput
from ddream.render import write_png
from ddream.runtime import autocast, seeded
from ddream.state import StateDir

# ---- the snapshots' fixed noise and decoder (the DiT's and the student's snapshots share them) -------
SNAPSHOT_CLASSES, SNAPSHOT_ROWS = 10, 4  # the snapshot grid: each class, four times


def snapshot_noise(
    seed: int, shape: tuple[int, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The snapshots' fixed noise and classes (the distilled student's snapshots draw the same)."""
    gen = seeded(seed, "snapshot")
    noise = torch.randn((SNAPSHOT_CLASSES * SNAPSHOT_ROWS, *shape), generator=gen)
    labels = torch.arange(SNAPSHOT_CLASSES).repeat(SNAPSHOT_ROWS)
    return noise.to(device), labels.to(device)


def latent_decoder(
    ae: torch.nn.Module, unstandardise: Callable[[torch.Tensor], torch.Tensor], device: torch.device
) -> Callable[[torch.Tensor], torch.Tensor]:
    """(Standardised) latents -> uint8 digits through a frozen autoencoder (for the snapshots)."""

    def decode(z: torch.Tensor) -> torch.Tensor:
        with autocast(device):
            return model_to_uint8(ae.decode(unstandardise(z)).float())

    return decode


POINTS_PER_EPOCH = 20  # loss points of the history an epoch, unless [log] every says otherwise
TENSORBOARD_HINT = (
    "TensorBoard logging needs the tensorboard extra: pip install 'ddream[tensorboard]'"
)


def summary_writer_class():
    """torch's SummaryWriter, or one line on what to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises it when the tensorboard package is missing
        raise BadInput(TENSORBOARD_HINT) from None
    return SummaryWriter


class Watch:
    """One stage run's history, snapshots and TensorBoard writer."""

    def __init__(
        self,
        state: StateDir,
        stage: str,
        cfg: LogConfig,
        *,
        header: dict[str, Any],
        snapshot,  # () -> uint8 picture, or None: the task's fixed-noise snapshot
        main: bool = True,
    ) -> None:
        self.state, self.stage, self.cfg, self.main = state, stage, cfg, main
        self.header = header
        self.snapshot = snapshot if cfg.snapshots else None
        self.path = history.history_path(state, stage)
        self.every = cfg.every or max(1, header["steps_per_epoch"] // POINTS_PER_EPOCH)
        self.rows: list[dict[str, Any]] = []
        self.writer = None
        self.seconds = 0.0

    # ---- the run's ends -------------------------------------------------------------------------
    def begin(self, global_step: int) -> None:
        """A fresh run (step 0) starts a new history and, as its first snapshot, the untrained
        model's; a resumed one cuts the history back to its checkpoint."""
        if not self.main:
            return
        t0 = time.perf_counter()
        if self.cfg.tensorboard:  # before any file: a missing extra is one line and nothing written
            writer_class = summary_writer_class()
        if global_step == 0:
            history.start(self.path, self.header)
            for _, old in history.snapshots(self.state, self.stage):
                old.unlink(missing_ok=True)
        else:
            history.keep_until(self.path, global_step, self.header)
        if self.cfg.tensorboard:  # events past the checkpoint's step are hidden from then on
            logdir = Path(self.cfg.tensorboard) / self.stage
            _after_last_events_file(logdir)
            purge = global_step + 1 if global_step else 0  # a fresh run hides an older run's all
            self.writer = writer_class(log_dir=str(logdir), purge_step=purge)
        if global_step == 0:
            self._snap(0, 0)
        self.seconds += time.perf_counter() - t0

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # a stop or a failure too: what a resume cuts back is on disk either way

    # ---- while it runs --------------------------------------------------------------------------
    def due(self, global_step: int) -> bool:
        """Whether this step's losses make a point of the history (the same answer on every rank:
        the loop's agreement on finite losses is a collective call)."""
        return global_step % self.every == 0

    def point(self, global_step: int, values: dict[str, float], wall: float) -> None:
        if not self.main:
            return
        t0 = time.perf_counter()
        row = {"kind": "point", "step": global_step, "wall": round(wall, 2)}
        row.update({k: _number(v) for k, v in values.items()})
        self.rows.append(row)
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"{self.stage}/train_{k}", v, global_step)
        self.seconds += time.perf_counter() - t0

    def epoch(
        self,
        epoch: int,
        global_step: int,
        metrics: dict[str, float],
        losses: dict[str, float],
        *,
        wall: float,
        images_per_s: float,
        phase: str,
    ) -> None:
        """An epoch's row, its snapshot, and their TensorBoard twins (`epoch` counts from 1)."""
        if not self.main:
            return
        t0 = time.perf_counter()
        row = {
            "kind": "epoch",
            "step": global_step,
            "epoch": epoch,
            "phase": phase,
            "wall": round(wall, 2),
            "images_per_s": round(images_per_s, 1),
            "metrics": {k: _number(v) for k, v in metrics.items() if k != "epoch"},
            "losses": {k: _number(v) for k, v in losses.items()},
        }
        self.rows.append(row)
        if self.writer is not None:
            for k, v in row["metrics"].items():
                self.writer.add_scalar(f"{self.stage}/{k}", v, global_step)
            self.writer.add_scalar(f"{self.stage}/images_per_s", row["images_per_s"], global_step)
            self.writer.add_scalar(f"{self.stage}/epoch", epoch, global_step)
        self._snap(epoch, global_step)
        self.seconds += time.perf_counter() - t0

    def flush(self) -> None:
        """Rows and events on disk: called before every resume checkpoint."""
        if not self.main:
            return
        t0 = time.perf_counter()
        history.append(self.path, self.rows)
        self.rows = []
        if self.writer is not None:
            self.writer.flush()
        self.seconds += time.perf_counter() - t0

    def _snap(self, epoch: int, global_step: int) -> None:
        if self.snapshot is None:
            return
        picture = self.snapshot()
        if picture is None:
            return
        write_png(history.snapshot_path(self.state, self.stage, epoch), picture)
        if self.writer is not None:
            self.writer.add_image(f"{self.stage}/snapshot", picture, global_step, dataformats="HW")


def _after_last_events_file(logdir: Path) -> None:
    """Wait, if need be, for the clock's next second: TensorBoard reads a folder's event files in
    name order, and a name starts with the second it was made in (then a counter, sorted as text:
    a run resumed within the second it stopped in could be read before it, and purged)."""
    stamps = []
    for path in logdir.glob("events.out.tfevents.*"):
        try:
            stamps.append(int(path.name.split(".")[3]))
        except (IndexError, ValueError):
            continue
    if stamps and max(stamps) >= int(time.time()):
        time.sleep(max(stamps) + 1 - time.time())


def _number(value: Any) -> float:
    return float(value)  # whole: a loss of 0.007 rounded to 6 places keeps 4 digits
