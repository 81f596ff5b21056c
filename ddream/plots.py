"""`ddream plot`: how a run learned, as pictures. One figure of the curves (the autoencoder's loss
and test PSNR with its phases shaded, the DiT's loss and validation loss, the student's loss and
one-step error; epochs below, wall time above) and a "how it learned" GIF per stage from its
fixed-noise snapshots. Reads the state dir's history files (ddream/history.py) and nothing else.

matplotlib draws the curves (the optional `plot` extra); the GIFs need only imageio, so `ddream all`
makes them whatever is installed. Every file is written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np

from ddream.errors import BadInput, DDreamError
from ddream.files import atomic_write_bytes
from ddream.history import History, load_history, snapshots
from ddream.registry import STAGE, STAGE_TABLE
from ddream.render import write_gif
from ddream.state import StateDir

PLOT_HINT = "the curves need matplotlib: pip install 'ddream[plot]'"
TRAINED = tuple(s.name for s in STAGE_TABLE if s.metric)  # the stages that train epoch by epoch
CURVES = "curves.png"
PLOTS = "plots"  # the state dir's folder for them (`ddream all` writes it; `ddream plot`'s default)
# each panel: the training loss's points, and the stage's held-out metric (registry.py's `metric`) by
# epoch, on an axis of its own unless it is a loss of the same kind
METRIC_LABELS = {"test_psnr": "test PSNR (dB)", "val_loss": "validation loss (EMA weights)",
                 "judge_acc": "the judge's class accuracy of its digits"}  # fmt: skip
SAME_AXIS = ("val_loss",)
PHASE_COLOURS = {"augmented": "#dbe9f6", "augmented + GAN": "#f9dcc4",
                 "augmented + GAN (decoder alone)": "#f3c9d9", "fine-tune": "#d9f2d9",
                 "fine-tune + GAN": "#f6e7a8"}  # fmt: skip


def have_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def import_matplotlib():
    """matplotlib's Agg canvas and Figure (no global pyplot state), or one line on what to install."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise BadInput(PLOT_HINT) from None
    return Figure, FigureCanvasAgg


def histories(state: StateDir) -> dict[str, History]:
    found = {stage: load_history(state, stage) for stage in TRAINED}
    return {k: v for k, v in found.items() if v is not None}


# ---- the GIFs ----------------------------------------------------------------------------------
def learning_frames(state: StateDir, stage: str) -> list[np.ndarray]:
    """The stage's snapshots as frames, each captioned with its epoch."""
    shots = snapshots(state, stage)
    total = shots[-1][0] if shots else 0
    hist = load_history(state, stage)
    if hist is not None and hist.header.get("epochs"):
        total = int(hist.header["epochs"])
    frames = []
    for epoch, path in shots:
        picture = iio.imread(path)
        if picture.ndim == 3:
            picture = picture[..., 0]
        text = "before training" if epoch == 0 else f"epoch {epoch} of {total}"
        # RGB: Pillow reads back a greyscale GIF whose frames use all 256 levels as mode P frames it
        # cannot turn into L (imageio fails on the autoencoder's); browsers showed it either way
        frames.append(
            np.repeat(_caption(picture, f"{STAGE[stage].title}: {text}")[..., None], 3, -1)
        )
    return frames


def _caption(picture: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    band = 22
    canvas = Image.new("L", (picture.shape[1], picture.shape[0] + band), 40)
    canvas.paste(Image.fromarray(picture), (0, band))
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    ImageDraw.Draw(canvas).text((6, band // 2), text, fill=235, font=font, anchor="lm")
    return np.asarray(canvas)


def write_learning_gif(state: StateDir, stage: str, path: Path) -> bool:
    """The stage's "how it learned" GIF at `path`, if it has two snapshots or more."""
    frames = learning_frames(state, stage)
    if len(frames) < 2:
        return False
    write_gif(path, frames, frame_ms=500, hold_ms=2500)
    return True


def write_learning_gifs(state: StateDir, out: Path) -> list[Path]:
    """`out/<stage>-learning.gif` for every stage with snapshots: its digits, epoch by epoch."""
    paths = [out / f"{stage}-learning.gif" for stage in TRAINED]
    return [
        p for stage, p in zip(TRAINED, paths, strict=True) if write_learning_gif(state, stage, p)
    ]


# ---- the curves --------------------------------------------------------------------------------
def _epoch_of(row: dict[str, Any], steps_per_epoch: int) -> float:
    return row["step"] / steps_per_epoch if steps_per_epoch else float(row.get("epoch", 0))


def _phases(epochs: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    """Runs of epochs in the same phase: (phase, first epoch's start, last epoch's end)."""
    spans: list[tuple[str, float, float]] = []
    for row in epochs:
        phase, e = row.get("phase"), float(row["epoch"])
        if not phase:
            continue
        if spans and spans[-1][0] == phase and spans[-1][2] == e - 1:
            spans[-1] = (phase, spans[-1][1], e)
        else:
            spans.append((phase, e - 1, e))
    return spans


def _panel(ax, hist: History) -> None:
    loss_key, metric = "loss", STAGE[hist.stage].metric[0]
    metrics = [(metric, METRIC_LABELS.get(metric, metric), metric not in SAME_AXIS)]
    spe = hist.steps_per_epoch
    for phase, lo, hi in _phases(hist.epochs):
        ax.axvspan(lo, hi, color=PHASE_COLOURS.get(phase, "#eeeeee"), lw=0, label=phase)
    lines = []
    points = [p for p in hist.points if loss_key in p]
    if points:
        xs = [_epoch_of(p, spe) for p in points]
        lines += ax.plot(xs, [p[loss_key] for p in points], color="#1f77b4", lw=1,
                         label=f"training {loss_key}")  # fmt: skip
    if points and min(p[loss_key] for p in points) > 0:
        ax.set_yscale("log")  # the first epoch's fall would flatten the rest on a linear axis
    ax.set_ylabel("loss")
    ax.set_xlabel("epoch")
    ax.set_title(STAGE[hist.stage].title, loc="left", fontsize=10)
    epochs = hist.epochs
    ex = [float(r["epoch"]) for r in epochs]
    for name, label, own_axis in metrics:
        ys = [r["metrics"].get(name) for r in epochs]
        if not any(isinstance(y, (int, float)) for y in ys):
            continue
        target = ax.twinx() if own_axis else ax
        lines += target.plot(ex, ys, "o-", color="#d62728", ms=3, lw=1.2, label=label)
        if own_axis:
            target.set_ylabel(label)
    if epochs:
        ax.set_xlim(0, max(ex[-1], 1))
    if not points and not ex:
        ax.text(0.5, 0.5, "no epochs yet", ha="center", va="center", transform=ax.transAxes)
    walls = [(0.0, 0.0)] + [(float(r["epoch"]), r["wall"]) for r in epochs if "wall" in r]
    if len(walls) > 2:  # a second axis in wall time (when the epochs ended)
        e_at, w_at = np.array(walls).T
        unit, per = ("minutes", 60.0) if w_at[-1] >= 120 else ("seconds", 1.0)
        w_at = w_at / per
        top = ax.secondary_xaxis(
            "top",
            functions=(lambda e: np.interp(e, e_at, w_at), lambda w: np.interp(w, w_at, e_at)),
        )
        top.set_xlabel(f"wall time ({unit})", fontsize=8)
        top.tick_params(labelsize=7)
    handles = [h for h in ax.get_legend_handles_labels()[0] if h.get_label() in PHASE_COLOURS]
    ax.legend(handles=handles + lines, fontsize=7, loc="center right", framealpha=0.85)


def curves_png(state: StateDir) -> bytes:
    """The curves figure of every trained stage with a history, as PNG bytes."""
    Figure, Canvas = import_matplotlib()
    found = histories(state)
    if not found:
        raise BadInput(f"{state.root} has no training history yet: run `ddream all` first")
    fig = Figure(figsize=(7.5, 2.9 * len(found)), dpi=110, layout="constrained")
    Canvas(fig)
    for ax, hist in zip(
        fig.subplots(len(found), 1, squeeze=False)[:, 0], found.values(), strict=True
    ):
        _panel(ax, hist)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


REPORT = "report.html"


def report_html(state: StateDir, pictures: list[Path]) -> str:
    """One page, next to the pictures it shows: the curves and GIFs, each stage's best and last
    epoch, the last `ddream eval` and every setting the finished stages were trained with."""
    import html

    from ddream.artifacts import read_report
    from ddream.config_file import to_toml
    from ddream.presets import get_profile
    from ddream.status import recorded_profile, status_rows

    rows = "".join(
        f"<tr><td>{html.escape(r.stage)}</td><td>{r.status}</td><td>{html.escape(r.metrics)}</td>"
        f"<td>{html.escape(r.best)}</td><td>{r.wall_time:.0f} s</td></tr>"
        for r in status_rows(state)
    )
    try:
        report = read_report(state)
    except DDreamError:  # a damaged report is the eval's business; the page still shows the run
        report = None
    if report:
        g = report.get("generation", {})
        scores = (
            f"<p>Last <code>ddream eval</code> ({html.escape(str(report.get('time', '?')))}, "
            f"{report.get('samples')} digits from the {html.escape(str(report.get('model')))}): "
            f"FID {g.get('fid', float('nan')):.2f}, class accuracy "
            f"{g.get('class_accuracy', float('nan')):.2%}, precision {g.get('precision', float('nan')):.3f}, "
            f"recall {g.get('recall', float('nan')):.3f}</p>"
        )
    else:
        scores = "<p>No <code>ddream eval</code> yet.</p>"
    settings, _ = recorded_profile(state, get_profile("reference"))
    images = "".join(
        f'<figure><img src="{p.name}" alt="{p.stem}"><figcaption>{p.stem}</figcaption></figure>'
        for p in pictures
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>ddream: how it learned</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}img{max-width:100%}"
        "figure{display:inline-block;vertical-align:top;margin:0 1em 1em 0}"
        "td,th{padding:.2em .8em;text-align:left}</style></head><body>"
        f"<h1>How it learned</h1><p>State dir <code>{html.escape(str(state.root))}</code></p>"
        f"{images}<h2>Stages</h2><table><tr><th>stage</th><th>status</th><th>last epoch</th>"
        f"<th>best epoch</th><th>wall time</th></tr>{rows}</table>{scores}"
        f"<h2>Settings</h2><pre>{html.escape(to_toml(settings))}</pre></body></html>\n"
    )


def plot(state: StateDir, out: Path, *, curves: bool = True) -> dict[str, Any]:
    """Write the curves (if `curves`: matplotlib must be there) and the GIFs into `out`; returns
    what was written and what is missing. Nothing is written when there is nothing to draw."""
    found = histories(state)
    if not found:
        raise BadInput(f"{state.root} has no training history yet: run `ddream all` first")
    data = curves_png(state) if curves else None  # before any file: a missing extra writes nothing
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if data is not None:
        atomic_write_bytes(out / CURVES, data)
        written.append(out / CURVES)
    written += write_learning_gifs(state, out)
    atomic_write_bytes(out / REPORT, report_html(state, written).encode())
    written.append(out / REPORT)
    missing = [s for s in TRAINED if s not in found]
    old = [s for s, h in found.items() if h.from_record]
    return {"written": [str(p) for p in written], "missing": missing, "from_record": old}
