"""The commands that edit a person's digit: `edit` (another class, in its own hand) and `complete`
(the rest of a digit from the part kept), each reading like its help."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ddream import cli_options as o
from ddream import cli_settings as cs
from ddream.cli_app import app, shared
from ddream.reports import complete_lines, edit_lines
from ddream.state import StateDir

# ---- the options of these two commands alone (the shared ones are cli_options') --------------------
EditImagesArg = Annotated[
    list[Path] | None, typer.Argument(help="PNG/JPEG/BMP/GIF files of digits, framed as MNIST was.")
]
EditTestOpt = Annotated[
    int | None,
    typer.Option("--test", min=1, max=10_000, help="Instead: the first N MNIST test digits."),
]
ToOpt = Annotated[
    int, typer.Option("--to", min=0, max=9, help="The class to turn each digit into.")
]
StrengthOpt = Annotated[
    float,
    typer.Option(
        "--strength",
        min=0.0,
        max=1.0,
        help="Share of the path from data to noise the source is moved back before it is redrawn: "
        "0 keeps the source (its reconstruction), 1 keeps only what the noise holds; it costs "
        "ceil(12 x S) teacher steps. Higher: more clearly the target class, less like the source.",
    ),
]
EditOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Output PNG (default NAME.edit.png / NAME.complete.png beside the input; edits.png / "
        "completions.png with --test).",
    ),
]
KeepOpt = Annotated[
    str | None,
    typer.Option(
        "--keep",
        help="Keep this half of the framed digit: top, bottom, left or right.",
        autocompletion=lambda: ["top", "bottom", "left", "right"],
    ),
]
BoxOpt = Annotated[
    tuple[int, int, int, int] | None,
    typer.Option(
        "--box",
        min=0,
        max=28,
        help="Keep the box X0 <= x < X1, Y0 <= y < Y1 of the 28x28 framed digit.",
    ),
]
MaskOpt = Annotated[
    Path | None,
    typer.Option(
        "--mask",
        help="Keep the pixels a mask image marks white; the size of the image it marks (28x28 with "
        "--test), framed with it.",
    ),
]
CompletionsOpt = Annotated[
    int,
    typer.Option(
        "--n",
        min=1,
        max=64,
        help="Completions of each digit: the likeliest class's best fit first, then by fit.",
    ),
]
CompleteClassOpt = Annotated[
    int | None,
    typer.Option("--class", "-c", min=0, max=9, help="Complete as this class (default: any)."),
]


@app.command("edit")
@shared
def edit_cmd(
    *,
    images: EditImagesArg = None,
    to: ToOpt,
    strength: StrengthOpt = 0.8,
    test: EditTestOpt = None,
    out: EditOutOpt = None,
    npz: o.NpzOpt = None,
    invert: o.InvertOpt = None,
    scale, data_dir, as_json, state_dir, device, seed, quiet,
) -> None:  # fmt: skip
    """Redraw a digit as another class in its own hand (slant, stroke, size), beside its source.

    FlowEdit on the teacher: --to the digit's own class returns its reconstruction.

    Example: ddream edit my_three.png --to 8
    """
    from ddream.stages.edit import Job, edit

    job = Job(images, cs.device_for(device, seed), test, out, npz, invert, data_dir, seed, scale)
    result = edit(StateDir(state_dir), job, to=to, strength=cs.finite(strength, "--strength"))
    text = json.dumps(result) if as_json else None if quiet else edit_lines(result)
    if text is not None:
        typer.echo(text)


@app.command("complete")
@shared
def complete_cmd(
    *,
    images: EditImagesArg = None,
    keep: KeepOpt = None,
    box: BoxOpt = None,
    mask: MaskOpt = None,
    n: CompletionsOpt = 8,
    cls: CompleteClassOpt = None,
    test: EditTestOpt = None,
    out: EditOutOpt = None,
    npz: o.NpzOpt = None,
    invert: o.InvertOpt = None,
    scale, data_dir, as_json, state_dir, device, seed, quiet,
) -> None:  # fmt: skip
    """Complete a digit from the pixels kept, and say how likely each class is given them.

    A row per digit: the source, what was kept (the rest grey), the completions.

    Example: ddream complete my_digit.png --keep top --n 8
    """
    from ddream.stages.edit import Job, complete

    job = Job(images, cs.device_for(device, seed), test, out, npz, invert, data_dir, seed, scale)
    result = complete(StateDir(state_dir), job, keep=keep, box=box, mask=mask, n=n, cls=cls)
    text = json.dumps(result) if as_json else None if quiet else complete_lines(result)
    if text is not None:
        typer.echo(text)
