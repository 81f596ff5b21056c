"""The state directory: atomic writes, records, derived freshness, the lock; safetensors checkpoints."""

import json
import os

import pytest
import torch

from ddream.checkpoint import (
    BadArtifact,
    flatten_optimizer,
    load_tensors,
    read_metadata,
    restore_optimizer,
    save_tensors,
)
from ddream.errors import DDreamError, StateBusy
from ddream.state import StateDir, atomic_write_bytes


def test_atomic_write_replaces_whole_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a" / "f.bin"
    atomic_write_bytes(path, b"one")
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert os.listdir(path.parent) == ["f.bin"]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


def test_records_go_from_running_to_done_with_hashed_outputs(tmp_path):
    state = StateDir(tmp_path)
    rec = state.start_record("ae", {"lr": 1}, {"config": "c", "data": "d"}, 3)
    assert state.view("ae").status == "partial"
    out = tmp_path / "ae" / "model.bin"
    atomic_write_bytes(out, b"weights")
    state.finish_record("ae", rec, {"model": out})
    saved = json.loads((tmp_path / "state.json").read_text())["stages"]["ae"]
    assert saved["status"] == "done" and len(saved["outputs"]["model"]["sha256"]) == 64
    assert {"torch", "ddream", "python"} <= set(saved["versions"])
    assert state.view("ae").status == "done"
    out.write_bytes(b"tampered")
    assert state.view("ae").status == "corrupt"


def test_downstream_records_go_stale_when_upstream_output_changes(tmp_path):
    state = StateDir(tmp_path)
    out = tmp_path / "ae" / "model.bin"
    atomic_write_bytes(out, b"v1")
    state.finish_record("ae", state.start_record("ae", {}, {}, 1), {"model": out})
    lat, test = tmp_path / "latents" / "train.bin", tmp_path / "latents" / "test.bin"
    atomic_write_bytes(lat, b"z")
    atomic_write_bytes(test, b"t")
    enc = state.start_record("encode", {}, {"ae": state.output_sha("ae", "model")}, 1)
    state.finish_record("encode", enc, {"train": lat, "test": test})
    assert state.view("encode").status == "done"
    atomic_write_bytes(out, b"v2")  # a retrained AE...
    state.finish_record("ae", state.start_record("ae", {}, {}, 1), {"model": out})
    assert state.view("encode").status == "stale"


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    a, b = StateDir(tmp_path), StateDir(tmp_path)
    with a.locked("train-ae"):
        with pytest.raises(StateBusy, match=f"pid {os.getpid()}"):
            with b.locked("all"):
                pass
    with b.locked("all"):  # released: the next writer gets it
        pass


def test_state_written_by_a_newer_ddream_is_refused(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"format": 99, "stages": {}}))
    with pytest.raises(DDreamError, match="newer ddream"):
        StateDir(tmp_path).read()


def test_tensors_and_metadata_round_trip(tmp_path):
    t = {"w": torch.randn(3, 4), "n": torch.arange(5)}
    sha = save_tensors(tmp_path / "m.safetensors", t, {"config": {"a": [1, 2]}})
    back, meta = load_tensors(tmp_path / "m.safetensors", sha)
    assert torch.equal(back["w"], t["w"]) and torch.equal(back["n"], t["n"])
    assert meta == {"config": {"a": [1, 2]}} == read_metadata(tmp_path / "m.safetensors")


@pytest.mark.parametrize("damage", ["truncate", "zero", "empty"])
def test_damaged_checkpoints_are_reported_by_name(tmp_path, damage):
    path = tmp_path / "m.safetensors"
    sha = save_tensors(path, {"w": torch.randn(64, 64)}, {})
    data = path.read_bytes()
    path.write_bytes(
        {"truncate": data[: len(data) // 2], "zero": bytes(len(data)), "empty": b""}[damage]
    )
    with pytest.raises(BadArtifact, match="m.safetensors"):
        load_tensors(path, sha)
    with pytest.raises(BadArtifact, match="m.safetensors"):
        load_tensors(path)


def test_optimizer_state_survives_the_flat_round_trip():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, groups = flatten_optimizer(opt, "opt")
    opt2 = torch.optim.AdamW(model.parameters(), lr=0.5)
    restore_optimizer(opt2, tensors, "opt", json.loads(json.dumps(groups)))
    a, b = opt.state_dict(), opt2.state_dict()
    assert b["param_groups"][0]["lr"] == 0.1
    for idx in a["state"]:
        for k in a["state"][idx]:
            assert torch.equal(a["state"][idx][k], b["state"][idx][k])
