"""A finished model survives a retrain that fails or is stopped: its record and files change only when
the new model is complete, and until then every reader draws from the previous one."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time

import pytest
import torch
from conftest import ddream_command, stop_after

import ddream
from ddream.files import sha256_bytes
from ddream.state import StateDir

QUICK = ["--profile", "quick", "--device", "cpu", "--quiet"]


@pytest.fixture
def state(trained_state, tmp_path):
    copy = tmp_path / "state"
    shutil.copytree(trained_state, copy)
    return copy


def digits(state, model="teacher"):
    return ddream.load(state, device="cpu").sample(n=20, seed=1, model=model)


def test_a_retrain_stopped_midway_leaves_the_previous_model_in_use(state, cli):
    before, dit_file = digits(state), (state / "dit" / "model.safetensors").read_bytes()
    with stop_after(3):
        res = cli("train-dit", "--epochs", "40", "--force", "--state-dir", state, *QUICK)
    assert res.code == 130
    assert (state / "dit" / "model.safetensors").read_bytes() == dit_file
    assert torch.equal(digits(state), before)
    assert cli("sample", "--n", "4", "--state-dir", state, "--device", "cpu", "-q").code == 0
    rows = json.loads(cli("status", "--json", "--state-dir", state).out)["stages"]
    dit = next(r for r in rows if r["stage"] == "dit")
    assert dit["status"] == "done" and "a newer run stopped at epoch 0 of 40" in dit["detail"]
    assert "ddream train-dit` resumes it" in dit["detail"]
    assert {r["stage"]: r["status"] for r in rows}["distill"] == "done"  # still fresh

    assert cli("train-dit", "--epochs", "40", "--state-dir", state, *QUICK).code == 0  # resumes
    assert not torch.equal(digits(state), before)
    record = StateDir(state).record("dit")
    assert record["status"] == "done" and "previous" not in record and record["epochs"] == 40


def test_a_state_dir_with_a_stopped_retrain_exports_the_previous_model(state, tmp_path, cli):
    before = digits(state)
    with stop_after(2):
        cli("train-dit", "--epochs", "40", "--force", "--state-dir", state, *QUICK)
    assert StateDir(state).record("dit")["status"] == "running"
    assert cli("export", tmp_path / "out", "--state-dir", state, "--device", "cpu", "-q").code == 0
    assert torch.equal(digits(tmp_path / "out"), before)


def test_a_retrain_that_fails_at_once_leaves_the_previous_model_in_use(state, cli, monkeypatch):
    before = digits(state, "student")

    def out_of_memory(*args, **kwargs):
        raise MemoryError("cannot allocate 1 TiB")

    monkeypatch.setattr("ddream.stages.distill.DiT.started_from", out_of_memory)  # the student
    res = cli("distill", "--force", "--state-dir", state, *QUICK)
    assert res.code == 1 and "MemoryError" in res.err
    assert StateDir(state).record("distill")["status"] == "running"
    assert torch.equal(digits(state, "student"), before)


def test_a_run_stopped_between_its_new_files_and_its_record_uses_the_new_files(state):
    """The instant after the new files are in place and before the record says done."""
    st = StateDir(state)
    old = st.record("dit")
    record = st.start_record("dit", old["config"], old["inputs"], old["epochs"])
    new = b"not the same weights"
    path = state / "dit" / "model.safetensors"
    record["closing"] = {"model": {"path": "dit/model.safetensors", "sha256": sha256_bytes(new)}}
    st.write_record("dit", record)
    assert st.view("dit").record["outputs"]["model"]["sha256"] == old["outputs"]["model"]["sha256"]
    path.write_bytes(new)  # as install_outputs does next
    view = st.view("dit")
    assert view.status == "done" and view.record["outputs"] == record["closing"]
    assert not view.interrupted


@pytest.mark.slow
def test_a_retrain_killed_at_random_points_never_takes_the_finished_model(state):
    """SIGINT, SIGTERM and kill -9 at random moments of a retrain (each run resuming the last):
    after each, `sample` draws the previous model's digits until the new one is complete, then the
    new one's (DDREAM_RETRAIN_KILLS kills; CI: 6)."""
    kills = int(os.environ.get("DDREAM_RETRAIN_KILLS", "6"))
    rng = random.Random(1)
    before = digits(state)
    old_sha = StateDir(state).record("dit")["outputs"]["model"]["sha256"]
    args = ["train-dit", "--epochs", "200", "--checkpoint-every", "5", "--state-dir", state, *QUICK]
    signals = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
    interrupted = 0
    for i in range(kills):
        sig = signals[i % 3]
        cmd = ddream_command(*args, step_delay=0.02)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 4.0))  # start-up (importing torch) takes part of this
        if proc.poll() is None:
            proc.send_signal(sig)
        proc.wait()
        record = StateDir(state).record("dit")  # a kill during start-up leaves the old record
        finished = record["status"] == "done" and record["outputs"]["model"]["sha256"] != old_sha
        assert torch.equal(digits(state), before) != finished, f"kill {i} ({sig.name})"
        interrupted += not finished
    if interrupted < kills // 2:  # the kills missed the run: the guarantee above went untested
        # Seen only under `.ci/run`'s output capture on 2026-11-30 (every kill found a finished new
        # model; with -s, alone, or in `python -m pytest`, most landed mid-run): reported, not passed.
        pytest.xfail(f"only {interrupted} of {kills} kills landed before the retrain finished")
    done = subprocess.run(ddream_command(*args), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not torch.equal(digits(state), before)
