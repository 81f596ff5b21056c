"""The Edit tab of `ddream serve`, as plain functions over the Demo's models (no Gradio here): a drawing
or an uploaded image redrawn as another class (`ddream edit`), or completed from the part kept
(`ddream complete`: a named half, or the part brushed on a second pad of the same size). Checked as
the other tabs check their controls; same seed, same pixels as the CLI and the API."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ddream.completer import HIDDEN_GREY, Completer, likeliest
from ddream.data import to_uint8
from ddream.demo import framed_source
from ddream.editor import Editor
from ddream.errors import BadInput
from ddream.limits import number, whole
from ddream.masks import KEEP, check_mask, named_mask
from ddream.render import grid
from ddream.userimage import Frame, array_gray

PAGE_NAMES = {"to": "the class to turn it into", "strength": "strength", "n": "completions",
              "cls": "class"}  # fmt: skip
MAX_SEED = 2**31 - 1
KEEP_CHOICES = (*KEEP, "brushed")


def a(digit: int) -> str:
    """'a 3', 'an 8'."""
    return f"an {digit}" if digit == 8 else f"a {digit}"


class EditTab:
    """Edit and complete a person's digit with the Demo's teacher, student and encoder."""

    def __init__(self, demo) -> None:
        self.demo = demo
        self._editor: Editor | None = None
        self._completer: Completer | None = None

    def edit(
        self, sketch: Any, upload: Any, to: Any, strength: Any, seed: Any = 0
    ) -> tuple[np.ndarray, str]:
        """The framed digit beside its edit, and a caption naming what the teacher read in it."""
        to = whole(to, PAGE_NAMES["to"], 0, 9)
        strength = number(strength, PAGE_NAMES["strength"], 0.0, 1.0)
        seed = whole(seed, "seed", 0, MAX_SEED)
        digit, _ = framed_source(sketch, upload)
        with self.demo.lock:
            if self._editor is None:
                if "teacher" not in self.demo.samplers:
                    raise BadInput(
                        "editing needs the teacher (the DiT), which this state dir lacks"
                    )
                self._editor = Editor(self.demo.samplers["teacher"], self.demo.ae.encoder)
            done = self._editor.change_class(
                digit[None], torch.tensor([to]), strength, seed, PAGE_NAMES
            )
        picture = grid(torch.stack([to_uint8(digit), done.images[0]]), 2, scale=6)
        caption = (
            f"the teacher read {a(int(done.sources[0]))}; redrawn as {a(to)} at strength "
            f"{strength:g} ({done.steps} teacher steps)"
        )
        return picture, caption

    def complete(
        self, sketch: Any, upload: Any, keep: Any, brushed: Any, n: Any = 8, seed: Any = 0
    ) -> tuple[np.ndarray, str]:
        """A row of the source, what was kept (the rest grey) and n completions; the caption gives
        the class posterior."""
        if keep not in KEEP_CHOICES:
            raise BadInput(f"keep {keep!r}: choose one of {', '.join(KEEP_CHOICES)}")
        n = whole(n, PAGE_NAMES["n"], 1, 16)
        seed = whole(seed, "seed", 0, MAX_SEED)
        digit, frame = framed_source(sketch, upload)
        if keep == "brushed":
            mask = self._brushed(brushed, frame)
        else:
            mask = named_mask(keep, "keep")
        with self.demo.lock:
            if self._completer is None:
                self._completer = Completer(self.demo.samplers[self.demo.default_model])
            done = self._completer.complete(digit[None], mask, n, seed, None, PAGE_NAMES)
        kept = torch.where(mask, to_uint8(digit), torch.tensor(HIDDEN_GREY, dtype=torch.uint8))
        row = torch.cat([to_uint8(digit)[None], kept[None], done.images[0]])
        likely = likeliest(done.posterior[0].tolist())
        caption = f"given what was kept: {likely} (your digit, what was kept, {n} completions)"
        return grid(row, len(row), scale=3), caption

    @staticmethod
    def _brushed(brushed: Any, frame: Frame) -> torch.Tensor:
        """The part brushed on the keep pad, stretched to the drawing's size, framed with it."""
        from PIL import Image

        drawing = brushed.get("composite") if isinstance(brushed, dict) else brushed
        if drawing is None:
            raise BadInput("brush the part to keep on the second pad first (or pick a half)")
        ink = array_gray(drawing, "the brushed part") < 0.5  # dark brush on a white pad
        if ink.shape != frame.shape:
            size = (frame.shape[1], frame.shape[0])
            ink = np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.NEAREST))
        return check_mask(frame.apply(ink), "the brushed part")
