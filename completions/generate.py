"""Regenerate the shell completion scripts beside this file from the installed `ddream`.

    python completions/generate.py

Typer's scripts call `ddream` back for every completion (`_DDREAM_COMPLETE=complete_SHELL ddream`),
so they stay valid as subcommands change; this is generated per shell, since detection fails in CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHELLS = {"bash": "ddream.bash", "zsh": "_ddream", "fish": "ddream.fish"}


def script(shell: str) -> str:
    env = {**os.environ, "_DDREAM_COMPLETE": f"source_{shell}"}
    out = subprocess.run(
        [sys.executable, "-m", "ddream"], env=env, capture_output=True, text=True, check=True
    ).stdout
    # `python -m ddream` names itself after the module; the installed command is `ddream`.
    return out.strip() + "\n"


def main() -> None:
    for shell, name in SHELLS.items():
        (HERE / name).write_text(script(shell))
        print(f"wrote completions/{name}")


if __name__ == "__main__":
    main()
