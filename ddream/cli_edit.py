"""The commands that edit a person's digit: `edit` (another class, in its own hand) and `complete`
(the rest of a digit from the part kept), each reading like its help."""

from __future__ import annotations

import json

import typer

from ddream import cli_options as o
from ddream import cli_settings as cs
from ddream.cli_app import app, shared
from ddream.reports import complete_lines, edit_lines
from ddream.state import StateDir


@app.command("edit")
@shared
def edit_cmd(
    *,
    images: o.EditImagesArg = None,
    to: o.ToOpt,
    strength: o.StrengthOpt = 0.8,
    test: o.EditTestOpt = None,
    out: o.EditOutOpt = None,
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
    images: o.EditImagesArg = None,
    keep: o.KeepOpt = None,
    box: o.BoxOpt = None,
    mask: o.MaskOpt = None,
    n: o.CompletionsOpt = 8,
    cls: o.CompleteClassOpt = None,
    test: o.EditTestOpt = None,
    out: o.EditOutOpt = None,
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
