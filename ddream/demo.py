"""What `ddream serve`'s page does, as plain functions over models loaded once, read-only.

Each handler takes the page's raw control values (which a browser or a script may send out of range,
empty or of the wrong type), checks them, and returns pictures (uint8 arrays, GIF paths) and a line
of text. Bad values raise BadInput with one line that the page shows; inference is serialised by one
lock, so several tabs can ask at once. Nothing is written into the state dir: GIFs go to a private
temporary folder.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddream.artifacts import load_ae
from ddream.errors import BadInput, DDreamError
from ddream.files import atomic_write_bytes
from ddream.limits import MAX_GUIDANCE
from ddream.limits import number as bounded_float
from ddream.limits import whole as bounded_int
from ddream.render import grid, write_gif
from ddream.sampler import (
    Sampler,
    SampleRequest,
    class_rows,
    dial_images,
    dial_scales,
    morph_images,
)
from ddream.stages.reconstruct import round_trip
from ddream.state import StateDir
from ddream.userimage import Frame, array_gray, framing, read_gray

MAX_COUNT = 400
MAX_STEPS = 50
MAX_SEED = 2**31 - 1
ROW_DIGITS = 8  # digits in a morph row and in the Draw tab's row of the class meant
MAX_FRAMES = 40
# The page's temporary folder (its GIFs, and Gradio's copies of what it serves when `ddream serve`
# puts Gradio's cache there): at most KEEP_FILES files and TEMP_BYTES in all, the oldest removed
# first, but never a file younger than IN_FLIGHT_S: a request may still be serving it.
KEEP_FILES = 64
TEMP_BYTES = 256 * 2**20
IN_FLIGHT_S = 30.0


def prune(folder: Path, keep: int, max_bytes: int, in_flight_s: float) -> None:
    """Remove the oldest files under `folder` until at most `keep` files and `max_bytes` remain,
    sparing those younger than `in_flight_s` (a request in flight may still read them)."""
    files = []
    for p in folder.rglob("*"):
        try:
            if p.is_file():
                st = p.stat()
                files.append((st.st_mtime, st.st_size, p))
        except OSError:  # removed meanwhile by another request
            continue
    files.sort()
    count, total = len(files), sum(size for _, size, _ in files)
    now = time.time()
    for mtime, size, p in files:
        if (count <= keep and total <= max_bytes) or now - mtime < in_flight_s:
            break
        p.unlink(missing_ok=True)
        count, total = count - 1, total - size


def framed_source(sketch: Any, upload: Any) -> tuple[torch.Tensor, Frame]:
    """The pad's drawing, or an uploaded image, MNIST-framed as `reconstruct` frames a file, and how
    it was framed (for a mask drawn over it); an upload's refusal names the file as the person knows
    it, not the server's copy."""
    upload_path = upload.get("path") if isinstance(upload, dict) else upload
    if upload_path:
        try:
            return framing(read_gray(Path(upload_path)), name=str(upload_path))
        except BadInput as e:
            raise BadInput(str(e).replace(str(upload_path), Path(upload_path).name)) from None
    drawing = sketch.get("composite") if isinstance(sketch, dict) else sketch
    if drawing is None:
        raise BadInput("draw a digit on the pad (or upload an image) first")
    return framing(array_gray(drawing, "the drawing"), name="the drawing")


def unset(value: Any) -> bool:
    """Empty controls (None, '', 0 for 'the model's own') leave the model's default."""
    return value is None or value == "" or value == 0


# the page's words for a request's values (sampler.CLI_NAMES has the command line's)
PAGE_NAMES = {"n": "count", "classes": "class", "seed": "seed", "steps": "steps", "cfg": "guidance",
              "solver": "solver", "cfg_interval": "a guidance interval", "dtype": "dtype",
              "teacher": "the teacher model"}  # fmt: skip


class Demo:
    """The state dir's models, loaded once; refuses to start with the same one-line messages as
    `ddream sample` when a stage is missing, stale or corrupt."""

    def __init__(self, state_dir: Path | str, device: torch.device) -> None:
        self.state = StateDir(state_dir)
        self.device = device
        default = Sampler.from_state(self.state, device, "auto")
        self.samplers = {default.kind: default}
        self.unavailable: dict[str, str] = {}
        if default.kind == "student":  # the teacher is a bonus: the student alone makes a page
            try:
                self.samplers["teacher"] = Sampler.from_state(self.state, device, "teacher")
            except DDreamError as e:
                self.unavailable["teacher"] = str(e)
        self.default_model = default.kind
        self.ae, _ = load_ae(self.state, device)
        self.lock = threading.Lock()
        self.workdir = Path(tempfile.mkdtemp(prefix="ddream-serve-"))

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- helpers ---------------------------------------------------------------------------------
    def sampler(self, model: Any) -> Sampler:
        if unset(model):
            return self.samplers[self.default_model]
        if not isinstance(model, str) or model not in self.samplers:  # a list is no key
            raise BadInput(f"model {model!r}: this state dir has {', '.join(self.samplers)}")
        return self.samplers[model]

    def _new_file(self, suffix: str) -> Path:
        prune(self.workdir, KEEP_FILES - 1, TEMP_BYTES, IN_FLIGHT_S)
        return self.workdir / f"{uuid.uuid4().hex}{suffix}"

    def _request(self, sampler: Sampler, **fields: Any) -> SampleRequest:
        return sampler.resolve(SampleRequest(model=sampler.kind, **fields), PAGE_NAMES)

    # ---- tabs ------------------------------------------------------------------------------------
    def generate(
        self, classes: Any, count: Any, seed: Any, model: Any, steps: Any, guidance: Any
    ) -> tuple[np.ndarray, str, str]:
        """Classes, count, seed, model, steps and guidance -> a labelled grid (a class a row), the
        GIF of how the digits formed, and a caption."""
        picked = parse_classes(classes)
        n = bounded_int(count, "count", 1, MAX_COUNT)
        seed = bounded_int(seed, "seed", 0, MAX_SEED)
        sampler = self.sampler(model)
        req = self._request(
            sampler,
            n=n,
            classes=picked,
            seed=seed,
            steps=None if unset(steps) else bounded_int(steps, "steps", 1, MAX_STEPS),
            cfg=None if unset(guidance) else bounded_float(guidance, "guidance", 0, MAX_GUIDANCE),
        )
        labels, ncols = class_rows(n, picked)
        row_labels = [str(int(labels[i])) for i in range(0, n, ncols)]
        with self.lock:
            t0 = time.perf_counter()
            images, path = sampler.generate(labels, req, keep_trajectory=True)
            seconds = time.perf_counter() - t0
            frames = [grid(sampler.decode(z), ncols, scale=2, row_labels=row_labels) for z in path]
        gif = self._new_file(".gif")
        write_gif(gif, frames)
        steps_text = f"{req.steps} {req.solver} step{'s' if req.steps > 1 else ''}"
        caption = (
            f"{n} digits from the {req.model} ({steps_text}, guidance {req.cfg}), seed {seed}, "
            f"in {seconds * 1000:.0f} ms"
        )
        return grid(images, ncols, scale=2, row_labels=row_labels), str(gif), caption

    def dial(self, classes: Any, seed: Any, model: Any) -> tuple[np.ndarray, str]:
        """The guidance dial: one digit per picked class (a column each) from the same noise, a row
        per guidance scale over the range the model takes; and a caption naming the scales."""
        picked = parse_classes(classes)
        seed = bounded_int(seed, "seed", 0, MAX_SEED)
        sampler = self.sampler(model)
        scales = dial_scales(sampler)
        req = self._request(sampler, n=len(picked), classes=picked, seed=seed)
        with self.lock:
            rows = dial_images(sampler, req, scales)
        picture = grid(torch.cat(rows), len(picked), scale=2, row_labels=[f"{w:g}" for w in scales])
        caption = (
            f"the same noise at guidance {', '.join(f'{w:g}' for w in scales)} (a row each): "
            "more guidance, cleaner and more alike digits; less, more varied ones"
        )
        return picture, caption

    def draw(
        self, sketch: Any, upload: Any, meant: Any, seed: Any = 0
    ) -> tuple[np.ndarray, np.ndarray, str, np.ndarray]:
        """A drawing (or an uploaded image) -> its MNIST framing, the autoencoder's reconstruction and
        its PSNR (as `ddream reconstruct`), and digits the model draws for the class meant."""
        meant = bounded_int(meant, "the digit you meant", 0, 9)
        seed = bounded_int(seed, "seed", 0, MAX_SEED)
        digit, _ = framed_source(sketch, upload)
        sampler = self.samplers[self.default_model]
        req = self._request(sampler, n=ROW_DIGITS, classes=(meant,), seed=seed)
        with self.lock:
            recon, score = round_trip(self.ae, digit[None], self.device)
            images, _ = sampler.generate(torch.full((ROW_DIGITS,), meant), req)
        to8 = lambda x: (x * 255).round().clamp(0, 255).to(torch.uint8)  # noqa: E731
        text = (
            f"PSNR {float(score[0]):.2f} dB between your digit (MNIST-framed) and its reconstruction; "
            f"below, {ROW_DIGITS} digits the {sampler.kind} draws as a {meant}"
        )
        return (
            grid(to8(digit)[None], 1, pad=0, scale=8),
            grid(to8(recon[0])[None], 1, pad=0, scale=8),
            text,
            grid(images, ROW_DIGITS // 2, scale=3),
        )

    def _morph_request(
        self, between: Any, start: Any, end: Any, digit: Any, seed: Any, model: Any
    ) -> tuple[Sampler, SampleRequest, int, int, str]:
        if between not in ("classes", "seeds"):
            raise BadInput(f"morph between {between!r}: choose classes or seeds")
        sampler = self.sampler(model)
        if between == "classes":
            start = bounded_int(start, "from class", 0, 9)
            end = bounded_int(end, "to class", 0, 9)
            classes = (start,)
        else:
            start = bounded_int(start, "from seed", 0, MAX_SEED)
            end = bounded_int(end, "to seed", 0, MAX_SEED)
            classes = (bounded_int(digit, "class", 0, 9),)
        seed = bounded_int(seed, "seed", 0, MAX_SEED)
        req = self._request(sampler, n=ROW_DIGITS, classes=classes, seed=seed)
        return sampler, req, start, end, between

    def morph_at(
        self, between: Any, start: Any, end: Any, digit: Any, seed: Any, model: Any, position: Any
    ) -> np.ndarray:
        """The row of digits at one point of the morph (0 = from, 1 = to): what the slider shows."""
        w = bounded_float(position, "position", 0.0, 1.0)
        sampler, req, start, end, between = self._morph_request(
            between, start, end, digit, seed, model
        )
        with self.lock:
            (images,) = morph_images(sampler, req, start, end, between, [w])
        return grid(images, ROW_DIGITS, scale=3)

    def morph_gif(
        self, between: Any, start: Any, end: Any, digit: Any, seed: Any, model: Any, frames: Any
    ) -> str:
        """The whole morph as a looping GIF (there and back)."""
        frames = bounded_int(frames, "frames", 2, MAX_FRAMES)
        sampler, req, start, end, between = self._morph_request(
            between, start, end, digit, seed, model
        )
        weights = torch.linspace(0.0, 1.0, frames).tolist()
        with self.lock:
            strip = morph_images(sampler, req, start, end, between, weights)
        pictures = [grid(images, ROW_DIGITS, scale=3) for images in strip]
        gif = self._new_file(".gif")
        write_gif(gif, pictures + pictures[-2:0:-1], frame_ms=90, hold_ms=90)
        return str(gif)

    def training(self) -> tuple[str | None, ...]:
        """How the run learned: the curves (None without matplotlib), each stage's snapshot GIF
        (None for a stage without snapshots), and a caption with each stage's best epoch."""
        from ddream.plots import PLOT_HINT, TRAINED, curves_png, histories, write_learning_gif
        from ddream.status import best_epoch

        found = histories(self.state)
        if not found:
            return None, None, None, None, "No training history in this state dir."
        lines = []
        curves = None
        try:
            data = curves_png(self.state)
            curves = self._new_file(".png")
            atomic_write_bytes(curves, data)
        except BadInput:
            lines.append(f"No curves: {PLOT_HINT}.")
        gifs = []
        for stage in TRAINED:
            path = self._new_file(".gif")
            gifs.append(str(path) if write_learning_gif(self.state, stage, path) else None)
            best = best_epoch(self.state, stage)
            if best:
                lines.append(f"**{stage}** best epoch {best}")
        return (None if curves is None else str(curves), *gifs, " · ".join(lines))

    def model_card(self) -> str:
        """What `ddream status` and the last `ddream eval` know, as Markdown."""
        from ddream.artifacts import read_report
        from ddream.status import status_rows

        lines = [
            "**Models**: "
            + ", ".join(
                f"{k} ({s.defaults['steps']} {s.defaults['solver']} step"
                f"{'s' if s.defaults['steps'] > 1 else ''}, guidance {s.defaults['cfg']})"
                for k, s in self.samplers.items()
            ),
            *(f"\n**{k} unavailable**: {why}" for k, why in self.unavailable.items()),
            "",
            "| stage | status | metrics | size | wall time |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in status_rows(self.state):
            size = f"{r.size_bytes / 1024:.0f} KB" if r.size_bytes else ""
            wall = f"{r.wall_time:.0f} s" if r.wall_time else ""
            lines.append(f"| {r.stage} | {r.status} | {r.metrics} | {size} | {wall} |")
        try:
            report, broken = read_report(self.state), None
        except DDreamError as e:  # the page still starts, and says what to do
            report, broken = None, str(e)
        lines.append("")
        if broken:
            lines.append(broken)
        elif report is None:
            lines.append("No `ddream eval` yet: run `ddream eval` to score this model.")
        else:
            g, rec = report.get("generation", {}), report.get("reconstruction", {})
            lines += [
                f"**Last `ddream eval`** ({report.get('time', '?')}): {report.get('samples')} "
                f"digits from the {report.get('model')} ({report.get('steps')} "
                f"{report.get('solver')} step{'' if report.get('steps') == 1 else 's'}, "
                f"guidance {report.get('cfg')})",
                "",
                "| FID | class accuracy | precision | recall | reconstruction PSNR (28x28) |",
                "| --- | --- | --- | --- | --- |",
                f"| {g.get('fid', float('nan')):.2f} | {g.get('class_accuracy', float('nan')):.2%} "
                f"| {g.get('precision', float('nan')):.3f} | {g.get('recall', float('nan')):.3f} "
                f"| {rec.get('psnr', float('nan')):.2f} dB |",
            ]
        return "\n".join(lines)


def parse_classes(classes: Any) -> tuple[int, ...]:
    """The picked classes ('3', 3, ['1', '7'] ...) as sorted distinct ints 0-9; at least one."""
    if classes is None or classes == "":
        raise BadInput("pick at least one class")
    items = classes if isinstance(classes, (list, tuple)) else [classes]
    picked = sorted({bounded_int(c, "class", 0, 9) for c in items})
    if not picked:
        raise BadInput("pick at least one class")
    return tuple(picked)
