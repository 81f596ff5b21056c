"""`ddream export`: a model folder that samples what its state dir samples, checked file by file,
with a model card for the Hub and ONNX graphs that match torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import ddream_command

import ddream
from ddream.errors import DDreamError
from ddream.files import sha256_file
from ddream.sampler import Sampler, SampleRequest
from ddream.state import StateDir

CPU = torch.device("cpu")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "onnx_sample.py"


@pytest.fixture(scope="module")
def exported(trained_state, mnist_dir, tmp_path_factory) -> Path:
    """The quick pipeline's state dir exported with ONNX graphs (shared, read-only)."""
    from ddream.cli import main

    out = tmp_path_factory.mktemp("export") / "model"
    args = ["export", out, "--onnx", "--data-dir", mnist_dir, "--state-dir", trained_state]
    try:
        main([str(a) for a in [*args, "--device", "cpu", "--quiet"]])
    except SystemExit as e:
        assert e.code in (0, None), f"export failed with exit code {e.code}"
    return out


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_the_folder_holds_every_model_a_card_and_a_manifest_of_their_sha256s(exported):
    manifest = json.loads((exported / "manifest.json").read_text())
    on_disk = {p for p in files_under(exported) if p != "manifest.json"}
    assert set(manifest["files"]) == on_disk
    for name in ("ae/model.safetensors", "dit/model.safetensors", "distill/student.safetensors"):
        assert name in on_disk
    assert {"generator.onnx", "encoder.onnx", "decoder.onnx", "samples.png"} <= on_disk
    assert {"reconstructions.png", "config.json", "README.md"} <= on_disk
    for name, sha in manifest["files"].items():
        assert sha256_file(exported / name) == sha
    assert set(manifest["stages"]) == {"ae", "dit", "distill"}

    config = json.loads((exported / "config.json").read_text())
    student = ddream.load(exported, device="cpu").sampler("student")
    assert config["latent_shape"] == list(student.shape)
    assert config["sampler"]["steps"] == student.defaults["steps"]
    assert config["onnx"]["max_grey_levels"]["generator"] <= 1


def test_the_card_has_front_matter_the_hub_reads_and_says_how_the_model_was_made(exported):
    card = (exported / "README.md").read_text()
    assert card.startswith("---\n")
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "ddream" and front["license"] == "mit"
    assert {"fid", "precision", "recall", "accuracy"} <= set(front["metrics"])
    assert front["datasets"] == ["mnist"] and "onnx" in front["tags"]
    manifest = json.loads((exported / "manifest.json").read_text())
    psnr = manifest["stages"]["ae"]["metrics"]["test_psnr"]
    assert f"test PSNR {psnr:.2f} dB" in card
    assert "![samples](samples.png)" in card and "![reconstructions](reconstructions.png)" in card
    assert "Not evaluated before export" in card  # the quick state dir was never scored


def test_the_card_shows_the_last_eval_when_there_was_one(trained_state, mnist_dir, tmp_path, cli):
    state = tmp_path / "state"
    shutil.copytree(trained_state, state)
    report = {
        "generation": {"fid": 4.14, "class_accuracy": 0.9936, "precision": 0.9, "recall": 0.78}
    }
    report |= {"samples": 10000, "model": "student", "steps": 1, "solver": "euler", "cfg": 1.5}
    (state / "eval").mkdir()
    (state / "eval" / "report.json").write_text(json.dumps(report))
    assert cli("export", tmp_path / "out", "--state-dir", state, "--device", "cpu", "-q").code == 0
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| 4.14 | 99.36% | 0.900 | 0.780 |" in card
    assert (
        "eval/report.json" in json.loads((tmp_path / "out" / "manifest.json").read_text())["files"]
    )
    assert "reconstructions.png" not in card  # no --data-dir, and the state dir caches no data


def test_the_folder_samples_the_digits_of_its_state_dir_through_the_api(trained_state, exported):
    for model in ("student", "teacher"):
        want = ddream.load(trained_state, device="cpu").sample(n=30, seed=3, model=model)
        got = ddream.load(exported, device="cpu").sample(n=30, seed=3, model=model)
        assert torch.equal(got, want)


@pytest.mark.slow
def test_the_folder_samples_the_digits_of_its_state_dir_in_a_fresh_process(
    trained_state, exported, tmp_path
):
    for name, where in (("state", trained_state), ("export", exported)):
        args = ["sample", "--n", "40", "--seed", "5", "--dtype", "fp32", "--state-dir", where]
        run = subprocess.run(
            ddream_command(*args, "--npz", tmp_path / f"{name}.npz", "--device", "cpu"),
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stderr
    a, b = np.load(tmp_path / "state.npz"), np.load(tmp_path / "export.npz")
    assert np.array_equal(a["images"], b["images"]) and np.array_equal(a["labels"], b["labels"])


def test_status_and_reading_commands_take_the_folder_and_writers_refuse_it(
    exported, mnist_dir, tmp_path, cli
):
    before = files_under(exported)
    status = cli("status", "--json", "--state-dir", exported)
    rows = {r["stage"]: r["status"] for r in json.loads(status.out)["stages"]}
    assert rows == {"ae": "done", "encode": "missing", "dit": "done", "distill": "done"}
    assert json.loads(status.out)["next"] is None
    assert "exported model folder (read-only)" in cli("status", "--state-dir", exported).out
    out = tmp_path / "recon.png"
    assert cli("reconstruct", "--test", 10, "--out", out, "--data-dir", mnist_dir,
               "--state-dir", exported, "--device", "cpu", "-q").code == 0  # fmt: skip
    assert out.exists()
    for args in (("train-dit",), ("distill",), ("all", "--profile", "quick"), ("encode",)):
        res = cli(*args, "--state-dir", exported, "--device", "cpu")
        assert res.code == 2 and "exported model folder, read-only" in res.err
        assert len(res.err.strip().splitlines()) == 1
    no_data = cli("reconstruct", "--test", 5, "--state-dir", exported, "--device", "cpu")
    assert no_data.code == 2 and "give --data-dir" in no_data.err
    assert files_under(exported) == before  # nothing written, nothing downloaded


@pytest.mark.slow  # eval trains its classifier (the quick state dir was never scored)
def test_eval_scores_an_exported_folder_and_writes_nothing_into_it(exported, mnist_dir, cli):
    before = files_under(exported)
    res = cli("eval", "--n", 100, "--data-dir", mnist_dir, "--json", "--state-dir", exported,
              "--device", "cpu")  # fmt: skip
    assert res.code == 0, res.err
    assert json.loads(res.out)["samples"] == 100
    assert files_under(exported) == before


def test_the_page_serves_an_exported_folder(exported):
    from ddream.demo import Demo

    demo = Demo(exported, CPU)
    try:
        picture, _, caption = demo.generate(["3"], 4, 0, "student", 0, 0)
        assert picture.ndim == 2 and picture.std() > 0 and "student" in caption
    finally:
        demo.close()


@pytest.mark.parametrize("victim", ["dit/model.safetensors", "README.md", "config.json"])
def test_a_file_changed_after_export_is_refused_by_name(exported, tmp_path, cli, victim):
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    data = bytearray((copy / victim).read_bytes())
    data[-1] ^= 1
    (copy / victim).write_bytes(bytes(data))
    res = cli("sample", "--n", 4, "--state-dir", copy, "--device", "cpu")
    assert res.code != 0 and "Traceback" not in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert victim in res.err and "manifest" in res.err
    (copy / victim).unlink()
    assert "is missing" in cli("status", "--state-dir", copy).err
    with pytest.raises(DDreamError, match="missing"):
        ddream.load(copy, device="cpu").sample(n=2)


def test_export_refuses_bad_places_and_incomplete_state_dirs_leaving_nothing(
    trained_state, tmp_path, cli
):
    base = ["--state-dir", trained_state, "--device", "cpu", "-q"]
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    res = cli("export", taken, *base)
    assert res.code == 2 and "not empty" in res.err and "--force" in res.err
    assert files_under(taken) == {"notes.txt": b"mine"}

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for bad, words in ((a_file, "is a file"), (a_file / "out", "cannot write"),
                       (trained_state, "holds the state dir")):  # fmt: skip
        res = cli("export", bad, *base)
        assert res.code == 2 and words in res.err, res.err
        assert len(res.err.strip().splitlines()) == 1

    partial = tmp_path / "partial"
    shutil.copytree(trained_state, partial)
    StateDir(partial).drop_record("distill")
    res = cli("export", tmp_path / "never", "--state-dir", partial, "--device", "cpu")
    assert res.code == 2 and "distill stage is missing" in res.err and "ddream distill" in res.err
    empty = cli("export", tmp_path / "never", "--state-dir", tmp_path / "nothing")
    assert empty.code == 2 and "no trained model" in empty.err
    assert not (tmp_path / "never").exists() and not (tmp_path / "nothing").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "partial", "taken"]


def test_force_replaces_a_folder_only_once_the_new_one_is_complete(
    trained_state, tmp_path, cli, monkeypatch
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    base = ["--state-dir", trained_state, "--device", "cpu", "-q", "--force"]

    def broken_card(*args, **kwargs):
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:
        m.setattr("ddream.stages.export.model_card", broken_card)
        assert cli("export", out, *base).code == 1
    assert files_under(out) == {"old.txt": b"old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left
    assert cli("export", out, *base).code == 0
    assert not (out / "old.txt").exists() and (out / "manifest.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_onnx_without_the_extra_is_one_line_and_writes_nothing(
    trained_state, tmp_path, cli, monkeypatch
):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    res = cli("export", tmp_path / "out", "--onnx", "--state-dir", trained_state)
    assert res.code == 2 and "pip install 'ddream[export]'" in res.err
    assert not (tmp_path / "out").exists()


@torch.inference_mode()
def test_the_onnx_graphs_match_torch_within_one_grey_level(exported):
    import onnxruntime as ort

    def run(name: str, **inputs):
        session = ort.InferenceSession(str(exported / name), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {k: v.numpy() for k, v in inputs.items()})[0])

    state = StateDir(exported)
    student = Sampler.student(state, CPU, "fp32")
    labels = torch.arange(1000) % 10
    noise = student.noise(1000, 11)
    want, _ = student.generate(labels, SampleRequest(n=1000, seed=11), noise=noise)
    got = run("generator.onnx", noise=noise, label=labels)
    assert got.dtype == torch.uint8 and got.shape == (1000, 28, 28)
    assert (got.int() - want.int()).abs().max() <= 1
    assert want.float().std() > 0  # digits, not a blank page

    ae = ddream.load(exported, device="cpu")
    latents = run("encoder.onnx", digits=want[:200])
    back = run("decoder.onnx", latents=latents)
    recon, _ = ae.reconstruct(want[:200].float() / 255)
    assert (back.int() - (recon * 255).round().int()).abs().max() <= 1


def test_the_example_draws_a_grid_from_the_onnx_generator_without_torch(exported, tmp_path):
    out = tmp_path / "grid.png"
    blocker = (
        "import runpy, sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    args = [str(EXAMPLE), str(exported), "--out", str(out), "--per-class", "3"]
    run = subprocess.run([sys.executable, "-c", blocker, *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    from PIL import Image

    picture = np.asarray(Image.open(out))
    assert picture.shape == (10 * 28 * 2, 3 * 28 * 2) and picture.std() > 0
    missing = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path)], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no generator.onnx" in missing.stderr
