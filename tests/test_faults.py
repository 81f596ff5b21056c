"""Faults a long run meets: kill -9 at random moments, dead lock holders, full disks, swapped or
foreign files. Each case drives the real CLI and checks that nothing is lost or silently used."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import ddream_command, make_mnist, stop_after

from ddream.checkpoint import load_tensors
from ddream.state import StateDir

QUICK = ["--profile", "quick", "--device", "cpu", "--quiet"]


def _status(cli, state):
    res = cli("status", "--json", "--state-dir", state)
    assert res.code == 0, res.err
    return {r["stage"]: r["status"] for r in json.loads(res.out)["stages"]}


def _every_file_loads(state):
    """state.json parses and every safetensors file under the state dir loads."""
    json.loads((state / "state.json").read_text())
    for path in state.rglob("*.safetensors"):
        load_tensors(path)


@pytest.mark.slow
def test_kill_9_loop_across_all_ends_complete_and_loadable(trained_state, tmp_path, mnist_dir):
    """kill -9 at random moments of `ddream all`, rerun after each (DDREAM_KILLS kills; CI: 5)."""
    kills = int(os.environ.get("DDREAM_KILLS", "5"))
    rng = random.Random(0)
    state = tmp_path / "state"
    args = ["all", "--data-dir", mnist_dir, "--state-dir", state, "--checkpoint-every", "2", *QUICK]
    cmd = ddream_command(*args, step_delay=0.05)
    for _ in range(kills):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 4.0))  # start-up (importing torch) takes part of this
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        if state.exists() and (state / "state.json").exists():
            _every_file_loads(state)
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    _every_file_loads(state)
    shas = {s: r["outputs"] for s, r in StateDir(state).read()["stages"].items()}
    ref = {s: r["outputs"] for s, r in StateDir(trained_state).read()["stages"].items()}
    assert shas == ref  # the same weights as a run never interrupted


@pytest.mark.slow
def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, mnist_dir, cli):
    state = tmp_path / "state"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from ddream.state import StateDir\n"
            "with StateDir(sys.argv[1]).locked('train-ae'):\n    print('held', flush=True); time.sleep(60)",
            str(state),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    busy = cli("train-ae", "--data-dir", mnist_dir, "--state-dir", state, *QUICK)
    assert busy.code == 1 and f"pid {holder.pid}" in busy.err
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert cli("train-ae", "--data-dir", mnist_dir, "--state-dir", state, *QUICK).code == 0


def test_a_full_disk_while_checkpointing_keeps_the_previous_files(
    tmp_path, mnist_dir, cli, monkeypatch
):
    state = tmp_path / "state"
    with stop_after(3):
        assert cli("train-ae", "--data-dir", mnist_dir, "--state-dir", state, *QUICK).code == 130
    resume = state / "ae" / "resume.safetensors"
    before, state_before = resume.read_bytes(), (state / "state.json").read_bytes()
    import ddream.state as state_module

    real_replace = os.replace

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state_module.os, "replace", disk_full)
    res = cli("train-ae", "--data-dir", mnist_dir, "--state-dir", state, *QUICK)
    monkeypatch.setattr(state_module.os, "replace", real_replace)
    assert res.code == 1 and "No space left" in res.err and res.err.count("\n") == 1
    assert resume.read_bytes() == before and (state / "state.json").read_bytes() == state_before
    assert not [p for p in state.rglob("*.tmp")]  # no temp files left behind
    assert cli("train-ae", "--data-dir", mnist_dir, "--state-dir", state, *QUICK).code == 0


def test_swapped_latent_files_are_caught(trained_state, tmp_path, cli):
    state = tmp_path / "state"
    shutil.copytree(trained_state, state)
    train, test = state / "latents" / "train.safetensors", state / "latents" / "test.safetensors"
    a, b = train.read_bytes(), test.read_bytes()
    train.write_bytes(b)
    test.write_bytes(a)
    assert _status(cli, state)["encode"] == "corrupt"
    res = cli("train-dit", "--state-dir", state, "--force", *QUICK)
    assert res.code == 1 and "train.safetensors" in res.err and "sha256" in res.err


def test_latents_of_an_older_autoencoder_are_not_trained_on(
    trained_state, tmp_path, mnist_dir, cli
):
    state = tmp_path / "state"
    shutil.copytree(trained_state, state)
    assert (
        cli("train-ae", "--data-dir", mnist_dir, "--state-dir", state, "--seed", "5", *QUICK).code
        == 0
    )
    res = cli("train-dit", "--state-dir", state, "--force", *QUICK)
    assert res.code == 1 and "stale" in res.err and "ddream encode" in res.err


def test_encoding_another_dataset_than_the_autoencoder_saw_is_refused(trained_state, tmp_path, cli):
    state = tmp_path / "state"
    shutil.copytree(trained_state, state)
    other = make_mnist(tmp_path / "other", n_train=100, n_test=20)
    res = cli("encode", "--data-dir", other, "--state-dir", state, "--force", "--device", "cpu")
    assert res.code == 2 and "another dataset" in res.err


def test_a_foreign_file_in_place_of_a_model_is_refused(trained_state, tmp_path, cli):
    state = tmp_path / "state"
    shutil.copytree(trained_state, state)
    shutil.copy(state / "latents" / "test.safetensors", state / "ae" / "model.safetensors")
    rec = StateDir(state).read()
    from ddream.state import sha256_file

    rec["stages"]["ae"]["outputs"]["model"]["sha256"] = sha256_file(
        state / "ae" / "model.safetensors"
    )
    (state / "state.json").write_text(json.dumps(rec))
    res = cli(
        "reconstruct",
        "--test",
        "5",
        "--state-dir",
        state,
        "--out",
        tmp_path / "x.png",
        "--device",
        "cpu",
    )
    assert res.code == 1 and "not a ddream autoencoder" in res.err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("content", ["{not json", json.dumps({"stages": []})])
def test_a_damaged_state_file_is_named(tmp_path, cli, content):
    (tmp_path / "state.json").write_text(content)
    res = cli("status", "--state-dir", tmp_path)
    assert res.code == 1 and "state.json" in res.err and "Traceback" not in res.err


@pytest.mark.slow
def test_debug_shows_the_traceback(tmp_path):
    env = {**os.environ, "DDREAM_DEBUG": "1"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "ddream",
            "reconstruct",
            str(tmp_path / "none.png"),
            "--state-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 1 and "Traceback" in res.stderr


@pytest.mark.parametrize(
    "command", [["train-dit"], ["distill"], ["encode"], ["train-ae", "--data-dir", "/nonexistent"]]
)
def test_a_refused_command_leaves_no_state_dir_behind(tmp_path, cli, command):
    state = tmp_path / "new"
    res = cli(*command, "--state-dir", state, "--device", "cpu")
    assert res.code in (1, 2) and res.err.count("\n") == 1
    assert "no finished" in res.err or "is not a folder" in res.err
    assert not state.exists()


def test_a_refused_command_on_an_existing_state_dir_keeps_it(trained_state, tmp_path, cli):
    state = tmp_path / "copy"
    shutil.copytree(trained_state, state)
    before = sorted(p.name for p in state.rglob("*"))
    res = cli("train-ae", "--state-dir", state, "--data-dir", tmp_path / "none", *QUICK)
    assert res.code == 2 and sorted(p.name for p in state.rglob("*")) == before
