"""torchrun with two gloo processes on the CPU trains what one process trains.

Both ranks draw the whole batch and train on their halves; DDP averages the gradients. The result
equals single-process training up to floating-point summation order: we require every weight to
agree within 1e-4 (absolute) after the quick profile's steps.
"""

import subprocess
import sys

import pytest
import torch

from ddream.checkpoint import load_tensors
from ddream.state import StateDir

QUICK = ["--profile", "quick", "--device", "cpu", "--quiet"]
TOLERANCE = 1e-4


def _torchrun(*args):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "ddream",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _max_diff(a_path, b_path):
    a, _ = load_tensors(a_path)
    b, _ = load_tensors(b_path)
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.mark.slow
def test_two_gloo_processes_match_one(trained_state, tmp_path, mnist_dir):
    state = tmp_path / "ddp"
    res = _torchrun("train-ae", "--data-dir", str(mnist_dir), "--state-dir", str(state), *QUICK)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (
        _max_diff(state / "ae" / "model.safetensors", trained_state / "ae" / "model.safetensors")
        < TOLERANCE
    )
    # only rank 0 wrote: one record, no stray temp files
    assert StateDir(state).record("ae")["status"] == "done"
    assert not list(state.rglob("*.tmp"))

    enc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ddream",
            "encode",
            "--data-dir",
            str(mnist_dir),
            "--state-dir",
            str(state),
            "--device",
            "cpu",
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert enc.returncode == 0, enc.stderr
    res = _torchrun("train-dit", "--state-dir", str(state), *QUICK)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (
        _max_diff(state / "dit" / "model.safetensors", trained_state / "dit" / "model.safetensors")
        < TOLERANCE
    )


def test_commands_that_do_not_train_refuse_torchrun(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("WORLD_SIZE", "2")
    res = cli("sample", "--state-dir", tmp_path)
    assert res.code == 2 and "torchrun" in res.err


def test_a_batch_that_does_not_split_over_the_processes_is_refused():
    from ddream.distributed import init_from_env
    from ddream.errors import BadInput

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORLD_SIZE", "2")
        with pytest.raises(BadInput, match="multiple of 2"):
            init_from_env(torch.device("cpu"), (65,))
