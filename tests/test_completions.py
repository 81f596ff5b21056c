"""completions/: generated from the app, kept in step with it, and working in a real bash."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "completions"))
import generate  # noqa: E402


@pytest.mark.parametrize("shell", sorted(generate.SHELLS))
def test_completion_scripts_match_what_the_app_generates(shell):
    committed = (ROOT / "completions" / generate.SHELLS[shell]).read_text()
    assert committed == generate.script(shell), "run `python completions/generate.py`"


def test_bash_completes_subcommands_and_options():
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    line = (
        f"source {ROOT / 'completions' / 'ddream.bash'}; COMP_WORDS=(ddream tra); COMP_CWORD=1; "
        '_ddream_completion ddream; echo "${COMPREPLY[@]}"; '
        'COMP_WORDS=(ddream sample --gr); COMP_CWORD=2; _ddream_completion ddream; echo "${COMPREPLY[@]}"'
    )
    if not (Path(sys.executable).parent / "ddream").exists():
        pytest.skip(
            "the ddream console script is not installed beside this Python (pip install -e .)"
        )
    out = subprocess.run(
        ["bash", "-c", line], capture_output=True, text=True, env={**os.environ, "PATH": path}
    )
    first, second = out.stdout.splitlines()[:2]
    assert first.split() == ["train-ae", "train-dit"]
    assert "--grid" in second.split()
