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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize(
    "words,offered",
    [
        ("ddream sample --solver ", ["euler", "heun"]),
        ("ddream all --profile ", ["reference", "fast", "quick"]),
        ("ddream train-ae --preset ", ["default", "digitdreamer"]),
        ("ddream train-ae --dataset ", ["mnist", "fashion", "kmnist", "emnist-digits", "qmnist"]),
        ("ddream sample --between ", ["classes", "seeds"]),
        ("ddream eval --model ", ["auto", "student", "teacher"]),
        ("ddream sample --device ", ["auto", "cpu", "cuda", "mps"]),
    ],
)
def test_fixed_choices_are_offered_by_completion(words, offered):
    env = {
        **os.environ,
        "_DDREAM_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split())),
    }
    out = subprocess.run([sys.executable, "-m", "ddream"], env=env, capture_output=True, text=True)
    assert out.stdout.split() == offered


def test_the_dataset_choices_are_the_datasets_ddream_reads():
    from typing import get_args

    from ddream.cli_options import Dataset
    from ddream.data import DATASETS

    assert list(get_args(Dataset)) == list(DATASETS)
