"""What the commands print: one line per result, the rich tables of `status` and `eval`, and any
error as one line with its exit code (`run_cli`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from ddream.errors import DDreamError


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def stage_line(command: str, result: dict | None, quiet: bool) -> None:
    """`train-ae: done in 12.3s (test_psnr 27.9, ...)`, or that it was already done and fresh."""
    if quiet or result is None:
        return
    metrics = ", ".join(
        f"{k} {v}"
        for k, v in result.get("metrics", {}).items()
        if not isinstance(v, list) and k != "epoch"
    )
    if result.get("skipped"):
        typer.echo(f"{command}: already done and fresh ({metrics}); use --force to redo")
    else:
        typer.echo(f"{command}: done in {result.get('wall_time', 0):.1f}s ({metrics})")


def sample_line(result: dict[str, Any]) -> str:
    return (
        f"sampled {result['n']} digits with the {result['model']} "
        f"({plural(result['steps'], result['solver'] + ' step')}, cfg {result['cfg']}, "
        f"{result['decoder']} decoder, {result['dtype']}) in {result['seconds']:.2f}s "
        f"({result['digits_per_s']:.0f}/s): {', '.join(result['written'])}"
    )


def plots_line(result: dict[str, Any]) -> None:
    """Where `ddream plot` (or the end of `ddream all`) put the pictures, and what it could not draw."""
    from ddream.plots import PLOT_HINT

    written = result["written"]
    if written:
        folder = Path(written[0]).parent
        typer.echo(f"how it learned: {folder}/ ({', '.join(Path(p).name for p in written)})")
    if not any(p.endswith("curves.png") for p in written):
        typer.echo(f"no curves.png: {PLOT_HINT}, then `ddream plot`")
    if result["missing"]:
        typer.echo(f"no history yet for: {', '.join(result['missing'])}")
    if result["from_record"]:
        old = ", ".join(result["from_record"])
        typer.echo(
            f"{old}: trained by an earlier ddream (epoch figures only; no loss points or snapshots)"
        )


def status_table(
    state_dir, rows, nxt: str | None, run: dict | None, exported: bool = False
) -> None:
    from rich.console import Console
    from rich.table import Table

    colours = {
        "done": "green",
        "partial": "yellow",
        "stale": "magenta",
        "missing": "dim",
        "corrupt": "red",
    }
    what = "exported model folder (read-only)" if exported else "state"
    table = Table(title=f"ddream {what}: {state_dir}")
    for col in ("stage", "status", "detail", "last epoch", "best epoch", "size", "wall time"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.stage,
            f"[{colours[r.status]}]{r.status}[/]",
            r.detail,
            r.metrics,
            r.best,
            size(r.size_bytes) if r.size_bytes else "",
            f"{r.wall_time:.0f}s" if r.wall_time else "",
        )
    console = Console()
    console.print(table)
    if run:
        opts = " ".join(
            f"{k.replace('_', '-')}={v}" for k, v in run["options"].items() if v is not None
        )
        console.print(f"last run: ddream {run['command']} ({run['time']}): {opts}", highlight=False)
    console.print(
        f"next: {nxt} (or `ddream all`)" if nxt else "all stages done: try `ddream sample`"
    )


def eval_table(state_dir, result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    g, f = result["generation"], result["real_floor"]
    table = Table(title=f"ddream eval: {state_dir} ({result['dataset']})")
    for col in ("metric", "model", "real-data floor"):
        table.add_column(col)
    for name, d in result["decoders"].items():
        table.add_row(f"reconstruction PSNR (28x28), {name}", f"{d['psnr']:.2f} dB", "")
        table.add_row(f"reconstruction SSIM, {name}", f"{d['ssim']:.4f}", "")
        table.add_row(f"reconstruction FID, {name}", f"{d['fid']:.3f}", "")
    table.add_row("FID (classifier features)", f"{g['fid']:.3f}", f"{f['fid']:.3f}")
    table.add_row("class accuracy", f"{g['class_accuracy']:.2%}", f"{f['class_accuracy']:.2%}")
    table.add_row("precision (k=3)", f"{g['precision']:.3f}", f"{f['precision']:.3f}")
    table.add_row("recall (k=3)", f"{g['recall']:.3f}", f"{f['recall']:.3f}")
    console = Console()
    console.print(table)
    console.print(
        f"{result['samples']} samples from the {result['model']} "
        f"({plural(result['steps'], result['solver'] + ' step')}, cfg {result['cfg']}, "
        f"{result['sampling_decoder']}): {result['digits_per_s']:.0f} digits/s. "
        f"Extractor: {result['extractor']}, test accuracy "
        f"{result['extractor_test_accuracy']:.2%}.",
        highlight=False,
    )


def reconstruct_lines(results: dict | list[dict]) -> str:
    """`ddream reconstruct`'s report: the --test figure's mean PSNR, or one line per image file."""
    if isinstance(results, dict):
        return (
            f"{results['n']} test digits through the autoencoder's own decoder, mean PSNR "
            f"{results['psnr']:.2f} dB: {results['output']}"
        )
    return "\n".join(
        f"{r['input']}: PSNR {r['psnr']:.2f} dB (autoencoder's decoder) -> {r['output']}"
        for r in results
    )


# ---- errors as one line, for the command line ------------------------------------------------------
def run_cli(app, argv: list[str]) -> None:
    """Run a Typer app; known errors become one line on stderr and an exit code, never a traceback
    (unless DDREAM_DEBUG=1 or --debug)."""
    debug = os.environ.get("DDREAM_DEBUG") == "1" or "--debug" in argv[:1]
    try:
        rv = typer.main.get_command(app).main(args=argv, prog_name="ddream", standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else 0)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(130)
    except DDreamError as e:
        if debug or os.environ.get("DDREAM_DEBUG") == "1":
            raise
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
    except Exception as e:
        if _is_usage_error(e):  # typer/click's own: bad option values, unknown commands
            if type(e).__name__ == "NoArgsIsHelpError":
                typer.echo(e.ctx.get_help() if getattr(e, "ctx", None) else e.format_message())
                sys.exit(0)
            message = e.format_message().replace("Value error, ", "")  # Typer's Literal checks
            typer.echo(f"error: {message}{_help_hint(e)}", err=True)
            sys.exit(2)
        if debug or os.environ.get("DDREAM_DEBUG") == "1":
            raise
        typer.echo(
            f"error: {type(e).__name__}: {e} (run with DDREAM_DEBUG=1 for the traceback)", err=True
        )
        sys.exit(1)


def _is_usage_error(e: Exception) -> bool:
    # Typer >= 0.2x vendors click, older ones use click itself: match the shape, not the module.
    return hasattr(e, "format_message") and any(c.__name__ == "UsageError" for c in type(e).__mro__)


def _help_hint(e: Exception) -> str:
    ctx = getattr(e, "ctx", None)
    return f" (see `{ctx.command_path} --help`)" if ctx is not None else ""


# ---- edit, complete ---------------------------------------------------------------------------------
def edit_lines(result: dict) -> str:
    """`ddream edit`'s report: what the teacher read in each source, and where the pictures went."""
    read = ", ".join(f"{e['input']} ({e['read_as']})" for e in result["edits"][:10])
    more = f" and {len(result['edits']) - 10} more" if len(result["edits"]) > 10 else ""
    return (
        f"edited {read}{more} -> {result['to']} at strength {result['strength']:g} "
        f"({result['steps']} teacher steps): {', '.join(result['written'])}"
    )


def complete_lines(result: dict) -> str:
    """`ddream complete`'s report: each digit's class posterior (or the class asked for)."""
    from ddream.completer import likeliest  # torch is loaded by now: the completion ran

    lines = []
    for c in result["completions"][:10]:
        what = (
            f"as {'an' if result['class'] == 8 else 'a'} {result['class']}"
            if result["class"] is not None
            else likeliest(c["posterior"])
        )
        lines.append(f"{c['input']}: {what}")
    if len(result["completions"]) > 10:
        lines.append(f"... and {len(result['completions']) - 10} more")
    lines.append(f"{result['n']} completions each: {', '.join(result['written'])}")
    return "\n".join(lines)
