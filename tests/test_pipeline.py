"""The whole pipeline through the CLI: all, status, staleness, resume after interrupts and kill -9."""

import json
import shutil
import signal
import subprocess
import sys
import time

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import ddream_command
from PIL import Image

from ddream import train
from ddream.state import StateDir

QUICK = ["--profile", "quick", "--device", "cpu", "--quiet"]


def _shas(state_dir):
    stages = StateDir(state_dir).read()["stages"]
    return {s: {k: o["sha256"] for k, o in rec["outputs"].items()} for s, rec in stages.items()}


def test_all_makes_every_stage_and_pictures(trained_state, cli):
    res = cli("status", "--json", "--state-dir", trained_state)
    assert res.code == 0
    report = json.loads(res.out)
    assert [s["status"] for s in report["stages"]] == ["done"] * 4
    assert report["next"] is None
    grid = np.asarray(Image.open(trained_state / "samples.png"))
    assert (
        grid.shape == (10 * 30 + 2, 10 * 30 + 2 + 14) and grid.std() > 10
    )  # a class a row, labelled
    frames = iio.imread(trained_state / "samples.gif", index=None)
    assert len(frames) == 12 and frames.shape[1:3] == grid.shape  # the student's straight path
    assert frames[0].std() > 0 and not np.array_equal(frames[0], frames[-1])
    table = cli("status", "--state-dir", trained_state)
    assert table.code == 0 and "test PSNR" in table.out and "val loss" in table.out


def test_all_again_skips_every_finished_stage(trained_state, tmp_path, mnist_dir, cli):
    state = tmp_path / "copy"
    shutil.copytree(trained_state, state)
    before = _shas(state)
    res = cli(
        "all",
        "--data-dir",
        mnist_dir,
        "--state-dir",
        state,
        "--profile",
        "quick",
        "--device",
        "cpu",
    )
    assert res.code == 0
    assert res.out.count("already done, skipped") == 4
    assert _shas(state) == before


def test_all_stopped_again_and_again_ends_with_the_same_weights(
    trained_state, tmp_path, mnist_dir, cli, monkeypatch
):
    """Interrupt `all` every 3 steps, in each stage in turn, and rerun until it finishes."""
    state = tmp_path / "state"
    monkeypatch.setattr(train, "STEP_HOOKS", [lambda steps: steps >= 3])
    seen_partial = set()
    for _ in range(30):
        res = cli("all", "--data-dir", mnist_dir, "--state-dir", state, *QUICK)
        if res.code == 0:
            break
        assert res.code == 130, res.err
        assert res.err.count("\n") == 1 and "rerun the same command to resume" in res.err
        rows = json.loads(cli("status", "--json", "--state-dir", state).out)["stages"]
        seen_partial |= {r["stage"] for r in rows if r["status"] == "partial"}
    else:
        pytest.fail("`all` never finished")
    assert seen_partial == {"ae", "dit", "distill"}
    assert _shas(state) == _shas(trained_state)  # every stage, the distilled student included


def test_retrained_autoencoder_makes_latents_and_dit_stale(trained_state, tmp_path, mnist_dir, cli):
    state = tmp_path / "copy"
    shutil.copytree(trained_state, state)
    res = cli("train-ae", "--data-dir", mnist_dir, "--state-dir", state, "--seed", "1", *QUICK)
    assert res.code == 0, res.err
    rows = {
        r["stage"]: r["status"]
        for r in json.loads(cli("status", "--json", "--state-dir", state).out)["stages"]
    }
    assert rows == {"ae": "done", "encode": "stale", "dit": "stale", "distill": "stale"}
    assert json.loads(cli("status", "--json", "--state-dir", state).out)["next"] == "ddream encode"
    sample = cli("sample", "--state-dir", state, "--grid", tmp_path / "x.png", "--device", "cpu")
    assert sample.code == 1 and "stale" in sample.err and "ddream encode" in sample.err
    res = cli("all", "--data-dir", mnist_dir, "--state-dir", state, "--seed", "1", *QUICK)
    assert res.code == 0, res.err
    rows = {
        r["stage"]: r["status"]
        for r in json.loads(cli("status", "--json", "--state-dir", state).out)["stages"]
    }
    assert rows == {"ae": "done", "encode": "done", "dit": "done", "distill": "done"}


def test_a_corrupted_artifact_is_reported_and_redone(trained_state, tmp_path, mnist_dir, cli):
    state = tmp_path / "copy"
    shutil.copytree(trained_state, state)
    model = state / "dit" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:100])
    rows = {
        r["stage"]: r
        for r in json.loads(cli("status", "--json", "--state-dir", state).out)["stages"]
    }
    assert rows["dit"]["status"] == "corrupt"
    # the student was made from the DiT its record names, so it still draws; the teacher cannot
    assert rows["distill"]["status"] == "done"
    res = cli(
        "sample", "--state-dir", state, "--grid", tmp_path / "x.png", "--device", "cpu",
        "--model", "teacher",
    )  # fmt: skip
    assert res.code == 1 and "model.safetensors" in res.err and not (tmp_path / "x.png").exists()
    assert cli("all", "--data-dir", mnist_dir, "--state-dir", state, *QUICK).code == 0
    assert _shas(state) == _shas(trained_state)


@pytest.mark.slow
def test_kill_9_during_training_loses_at_most_a_checkpoint_interval(
    trained_state, tmp_path, mnist_dir
):
    state = tmp_path / "state"
    args = ["all", "--data-dir", mnist_dir, "--state-dir", state, "--checkpoint-every", "1", *QUICK]
    proc = subprocess.Popen(
        ddream_command(*args, step_delay=0.2), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    resume = state / "ae" / "resume.safetensors"
    deadline = time.time() + 60
    while not resume.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert StateDir(state).view("ae").status == "partial"
    done = subprocess.run(ddream_command(*args), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _shas(state)["ae"] == _shas(trained_state)["ae"]
    assert _shas(state)["dit"] == _shas(trained_state)["dit"]


@pytest.mark.slow
def test_sigterm_saves_progress_and_exits_143(tmp_path, mnist_dir):
    state = tmp_path / "state"
    args = ["train-ae", "--data-dir", mnist_dir, "--state-dir", state, "--checkpoint-every", "1"]
    proc = subprocess.Popen(
        ddream_command(*args, *QUICK, step_delay=0.2),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    resume = state / "ae" / "resume.safetensors"
    deadline = time.time() + 60
    while not resume.exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert err.strip().count("\n") == 0 and "SIGTERM" in err and "Traceback" not in err
    assert StateDir(state).view("ae").status == "partial"


def test_the_digitdreamer_preset_runs_and_samples_with_its_own_defaults(tmp_path, mnist_dir, cli):
    state = tmp_path / "dd"
    res = cli(
        "all", "--preset", "digitdreamer", "--data-dir", mnist_dir, "--state-dir", state, *QUICK
    )
    assert res.code == 0, res.err
    rec = StateDir(state).record("ae")
    assert (
        rec["config"]["model"]["arch"] == "digitdreamer"
        and rec["config"]["train"]["recon_loss"] == "bce"
    )
    teacher = cli(
        "sample", "--state-dir", state, "--n", "10", "--json", "--device", "cpu",
        "--model", "teacher", "--npz", tmp_path / "x.npz",
    )  # fmt: skip
    assert teacher.code == 0, teacher.err
    summary = json.loads(teacher.out)
    # the preset's guidance and solver, the quick profile's steps
    assert (summary["model"], summary["cfg"], summary["solver"], summary["steps"]) == (
        "teacher", 2.0, "euler", 4,
    )  # fmt: skip
    # the student of the preset's DiT has the preset's guidance baked in, and its own decoder is
    # the preset's plain one (no small decoder is distilled for it)
    student = json.loads(
        cli(
            "sample",
            "--state-dir",
            state,
            "--n",
            "10",
            "--json",
            "--device",
            "cpu",
            "--npz",
            tmp_path / "y.npz",
        ).out  # fmt: skip
    )
    assert (student["model"], student["cfg"], student["steps"], student["decoder"]) == (
        "student", 2.0, 1, "autoencoder",
    )  # fmt: skip
    unguided = cli(
        "sample", "--state-dir", state, "--n", "10", "--npz", tmp_path / "z.npz", "--json",
        "--model", "teacher", "--cfg", "1.0", "--device", "cpu",
    )  # fmt: skip
    assert unguided.code == 0 and json.loads(unguided.out)["cfg"] == 1.0
    assert not np.array_equal(
        np.load(tmp_path / "x.npz")["images"], np.load(tmp_path / "z.npz")["images"]
    )


def test_unknown_preset_is_refused(tmp_path, cli):
    res = cli("all", "--preset", "sota", "--state-dir", tmp_path)
    assert res.code == 2 and "digitdreamer" in res.err


@pytest.mark.slow
def test_status_reads_json_and_files_only_no_torch(trained_state):
    """`ddream status` answers without importing torch (or any stage), from a fresh interpreter."""
    code = (
        "import json, sys\n"
        "from ddream.cli import main\n"
        "try:\n"
        f"    main(['status', '--json', '--state-dir', {str(trained_state)!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'torch' or m.startswith('ddream.stages'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *report, loaded = out.stdout.strip().splitlines()
    assert json.loads(loaded) == []
    stages = json.loads("\n".join(report))["stages"]
    assert [(s["stage"], s["status"]) for s in stages] == [
        ("ae", "done"),
        ("encode", "done"),
        ("dit", "done"),
        ("distill", "done"),
    ]


def test_sample_needs_only_the_autoencoder_and_dit_files(trained_state, tmp_path, cli):
    """The DiT file carries the latent statistics: no latents files (nor student) needed."""
    state = tmp_path / "copy"
    shutil.copytree(trained_state, state)
    shutil.rmtree(state / "latents")
    shutil.rmtree(state / "distill")
    res = cli("sample", "--state-dir", state, "--grid", tmp_path / "x.png", "--device", "cpu")
    assert res.code == 0 and "with the teacher" in res.out
    full = cli(
        "sample", "--state-dir", trained_state, "--grid", tmp_path / "y.png", "--device", "cpu",
        "--model", "teacher",
    )  # fmt: skip
    assert (tmp_path / "x.png").read_bytes() == (tmp_path / "y.png").read_bytes()
    assert full.code == 0


def test_a_dit_written_before_it_described_itself_still_samples(trained_state, tmp_path, cli):
    """DiT files of release 0.1 hold no latent statistics: they come from the latents file."""
    from ddream.checkpoint import load_tensors, save_tensors

    state = tmp_path / "copy"
    shutil.copytree(trained_state, state)
    path = state / "dit" / "model.safetensors"
    tensors, meta = load_tensors(path)
    for key in ("latent_mean", "latent_std", "ae_sha256"):
        del meta[key]
    sha = save_tensors(path, tensors, meta)
    sd = StateDir(state)
    rec = sd.record("dit")
    rec["outputs"]["model"]["sha256"] = sha
    sd.write_record("dit", rec)
    distill = sd.record("distill")
    distill["inputs"]["dit"] = sha
    sd.write_record("distill", distill)
    args = ("--device", "cpu", "--model", "teacher")
    old = cli("sample", "--state-dir", state, "--grid", tmp_path / "x.png", *args)
    new = cli("sample", "--state-dir", trained_state, "--grid", tmp_path / "y.png", *args)
    assert old.code == new.code == 0
    assert (tmp_path / "x.png").read_bytes() == (tmp_path / "y.png").read_bytes()


def test_all_says_which_stage_of_how_many_and_what_is_left_of_the_whole_run(
    tmp_path, mnist_dir, cli
):
    args = ["--profile", "quick", "--device", "cpu"]  # not --quiet: the lines are the point
    res = cli("all", "--data-dir", mnist_dir, "--state-dir", tmp_path / "s", *args)
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    heads = [ln for ln in lines if ln.startswith("[")]
    assert [h.split("]")[0] + "]" for h in heads] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert "estimated from the development machine" in heads[0]  # nothing measured yet
    assert all("whole run: about" in h for h in heads)
    assert "estimated" not in heads[-1]  # measured on this machine once a stage has run
    epochs = [ln for ln in lines if " epoch " in ln and "ETA" in ln]
    assert epochs and all("whole run: about" in ln for ln in epochs)


def test_the_plan_scales_what_is_left_by_the_measured_pace():
    from ddream.progress import Plan

    plan = Plan({"ae": 100.0, "encode": 10.0, "dit": 30.0, "distill": 60.0})
    assert plan.left() == 200.0 and not plan.measured
    plan.epoch("ae", elapsed=50.0, left=150.0, done_before=0.0)  # twice as slow as expected
    assert plan.factor == 2.0 and plan.left("ae", 150.0) == 150.0 + 2 * 100.0
    plan.finished("ae", wall_time=200.0)
    assert plan.left("encode") == 2 * 100.0 and plan.text("encode").endswith("left")
    plan.epoch("dit", elapsed=10.0, left=5.0, done_before=0.5)  # resumed half way: 15 s for 15
    assert plan.factor == 1.0 and plan.left("dit", 5.0) == 5.0 + 60.0


def test_all_accounts_for_every_second_in_its_run_record_and_last_line(tmp_path, mnist_dir, cli):
    state = tmp_path / "s"
    res = cli("all", "--data-dir", mnist_dir, "--state-dir", state, "--profile", "quick",
              "--device", "cpu")  # fmt: skip
    assert res.code == 0, res.err
    run = StateDir(state).read()["run"]
    seconds, detail = run["seconds"], run["seconds_detail"]
    names = list(seconds)
    assert names == ["start-up", "ae", "encode", "dit", "distill", "pictures", "plots", "other",
                     "total"]  # fmt: skip
    parts = sum(v for k, v in seconds.items() if k != "total")
    assert abs(parts - seconds["total"]) <= 0.02 * seconds["total"]
    # each training stage split into what its record keeps and what it loaded before
    for stage in ("ae", "dit", "distill"):
        inner = detail[stage]
        assert set(inner) == {"setup", "training", "writing", "loading"}
        assert abs(sum(inner.values()) - seconds[stage]) <= 0.02 + 0.01 * seconds[stage]
        assert StateDir(state).record(stage)["setup_time"] == inner["setup"]
    # distill's pairs and judges are made in its setup, which its record now keeps
    assert detail["distill"]["setup"] > 0
    last = res.out.strip().splitlines()[-1]
    assert last.startswith(f"whole run {seconds['total']:.0f} s = start-up")
    assert "distill" in last and "setup" in last and last.endswith(f"other {seconds['other']:.0f}")
