"""The README's command reference, generated from the Typer app so it cannot drift from `--help`.

python -m ddream.reference docs/reference.md    # rewrite the block between the markers
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ddream.cli import app

START, END = "<!-- command-reference:start -->", "<!-- command-reference:end -->"


def _flags(param) -> str:
    names = list(param.opts) + list(getattr(param, "secondary_opts", []) or [])
    if getattr(param, "param_type_name", "") == "argument":
        return param.name.upper() + "…" if param.nargs == -1 else param.name.upper()
    return " / ".join(f"`{n}`" for n in names)


def _default(param) -> str:
    default = param.default
    if default is None or getattr(param, "param_type_name", "") == "argument":
        return ""
    if isinstance(default, bool):
        return "" if not default else "on"
    if isinstance(default, (list, tuple)) and not default:
        return ""
    return f"`{default}`"


def markdown() -> str:
    group = typer.main.get_command(app)
    parts = []
    for name, command in group.commands.items():
        help_text = (command.help or "").strip()
        paragraphs = [p.strip().replace("\n", " ") for p in help_text.split("\n\n") if p.strip()]
        summary = paragraphs[0] if paragraphs else ""
        example = next((p for p in paragraphs if p.startswith("Example:")), "")
        parts.append(f"### `ddream {name}`\n\n{summary}\n")
        if example:
            parts.append(f"```bash\n{example.removeprefix('Example:').strip()}\n```\n")
        parts.append("| option | meaning | default |\n| --- | --- | --- |")
        for param in command.params:
            if param.name == "help":
                continue
            meaning = (getattr(param, "help", None) or "").replace("|", "\\|").replace("\n", " ")
            parts.append(f"| {_flags(param)} | {meaning} | {_default(param)} |")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def splice(readme: str) -> str:
    """The README text with the reference block replaced by a freshly generated one."""
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{markdown()}{END}{tail}"


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/reference.md")
    path.write_text(splice(path.read_text()))
    print(f"updated the command reference in {path}")
