"""Watching a run learn: its history, snapshots and TensorBoard events survive stops, kill -9 and
resumes without a lost or doubled epoch; `ddream plot` draws them (or says in one line why not);
`ddream status` names each stage's best epoch."""

import json
import random
import shutil
import signal
import subprocess
import sys
import time

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import ddream_command

from ddream import train
from ddream.history import (
    History,
    history_path,
    keep_until,
    load_history,
    read_lines,
    snapshots,
    start,
)
from ddream.state import StateDir

QUICK = ["--profile", "quick", "--device", "cpu", "--quiet"]
TRAINED = ("ae", "dit", "distill")


def _rows(state_dir, stage):
    """The history's rows without what differs between two runs of the same steps (times)."""
    rows = read_lines(history_path(StateDir(state_dir), stage))
    assert rows and rows[0]["kind"] == "run"
    drop = ("wall", "images_per_s")
    return [{k: v for k, v in r.items() if k not in drop} for r in rows[1:]]


def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_an_unbroken_run_keeps_a_row_per_epoch_a_point_every_n_steps_and_snapshots(trained_state):
    state = StateDir(trained_state)
    for stage in TRAINED:
        hist = load_history(state, stage)
        record = state.record(stage)
        assert not hist.from_record and hist.header["started"] == record["started"]
        assert [r["epoch"] for r in hist.epochs] == list(range(1, record["epochs"] + 1))
        spe = hist.steps_per_epoch
        assert [r["step"] for r in hist.epochs] == [spe * e for e in range(1, record["epochs"] + 1)]
        assert [p["step"] for p in hist.points] == list(range(1, spe * record["epochs"] + 1))
        assert all(np.isfinite(p["loss"]) and p["wall"] >= 0 for p in hist.points)
        # the record keeps the same per-epoch figures
        assert [r["metrics"] for r in hist.epochs] == [
            {k: v for k, v in m.items() if k != "epoch"} for m in record["history"]
        ]
        assert [e for e, _ in snapshots(state, stage)] == list(range(record["epochs"] + 1))
        assert 0 < record["watch_time"] < record["wall_time"]
    phases = [r["phase"] for r in load_history(state, "ae").epochs]
    assert phases == ["augmented", "fine-tune"]  # quick: 1 + 1 epochs of 4 steps; GAN from step 8
    # 4 steps an epoch: a point each (20 an epoch at most, by default)


def test_snapshots_show_the_same_digits_and_noise_every_epoch(trained_state):
    state = StateDir(trained_state)
    ae = [iio.imread(p) for _, p in snapshots(state, "ae")]
    half = ae[0].shape[0] // 2
    assert all(np.array_equal(a[:half], ae[0][:half]) for a in ae)  # the same 8 test digits on top
    assert not np.array_equal(ae[0][half:], ae[-1][half:])  # their reconstructions change
    dit = [iio.imread(p) for _, p in snapshots(state, "dit")]
    assert dit[0].shape == (2 * (4 * 30 + 2), 2 * (10 * 30 + 2))  # each class 4 times, zoomed 2x
    assert not np.array_equal(dit[0], dit[-1])
    student = iio.imread(snapshots(state, "distill")[-1][1])
    assert student.shape == dit[-1].shape  # the same grid, drawn from the same noise


def test_stopped_and_resumed_runs_keep_the_unbroken_runs_history_and_events(
    trained_state, tmp_path, mnist_dir, cli, monkeypatch
):
    """Stop `all` every 3 steps (as SIGINT does), rerun until done: the history, the snapshots and
    the TensorBoard events are those of a run never stopped, none lost, none twice."""
    state, tb = tmp_path / "state", tmp_path / "tb"
    monkeypatch.setattr(train, "STEP_HOOKS", [lambda steps: steps >= 3])
    args = ["all", "--data-dir", mnist_dir, "--state-dir", state, "--tensorboard", tb, *QUICK]
    for _ in range(40):
        res = cli(*args)
        if res.code == 0:
            break
        assert res.code == 130, res.err
    else:
        pytest.fail("`all` never finished")
    for stage in TRAINED:
        assert _rows(state, stage) == _rows(trained_state, stage)
        ours, theirs = snapshots(StateDir(state), stage), snapshots(StateDir(trained_state), stage)
        assert [p.read_bytes() for _, p in ours] == [p.read_bytes() for _, p in theirs]
        events = _events(tb / stage)
        hist = load_history(StateDir(state), stage)
        loss = events.Scalars(f"{stage}/train_loss")
        assert [e.step for e in loss] == [p["step"] for p in hist.points]
        assert [e.value for e in loss] == pytest.approx([p["loss"] for p in hist.points], rel=1e-5)
        metric = {"ae": "test_psnr", "dit": "val_loss", "distill": "judge_acc"}[stage]
        held_out = events.Scalars(f"{stage}/{metric}")
        assert [e.step for e in held_out] == [r["step"] for r in hist.epochs]
        images = events.Images(f"{stage}/snapshot")
        assert [e.step for e in images] == [0] + [r["step"] for r in hist.epochs]


@pytest.mark.slow
def test_kill_9_at_random_points_loses_and_doubles_no_epoch(trained_state, tmp_path, mnist_dir):
    rng = random.Random(1)
    state, tb = tmp_path / "state", tmp_path / "tb"
    args = ["all", "--data-dir", mnist_dir, "--state-dir", state, "--checkpoint-every", "2"]
    cmd = ddream_command(*args, "--tensorboard", tb, *QUICK, step_delay=0.05)
    for _ in range(5):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 5.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(1.0)  # TensorBoard's file names carry the second they were made
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for stage in TRAINED:
        assert _rows(state, stage) == _rows(trained_state, stage)
        hist = load_history(StateDir(state), stage)
        steps = [e.step for e in _events(tb / stage).Scalars(f"{stage}/train_loss")]
        assert steps == [p["step"] for p in hist.points]


def test_a_redone_stage_starts_a_new_history(trained_state, tmp_path, mnist_dir, cli):
    state = tmp_path / "copy"
    shutil.copytree(trained_state, state)
    before = load_history(StateDir(state), "ae")
    (state / "ae" / "snapshots" / "epoch-007.png").write_bytes(b"from an older, longer run")
    res = cli("train-ae", "--data-dir", mnist_dir, "--state-dir", state, "--seed", "1", *QUICK)
    assert res.code == 0, res.err
    after = load_history(StateDir(state), "ae")
    assert after.header["started"] == StateDir(state).record("ae")["started"]
    assert [r["epoch"] for r in after.epochs] == [1, 2]  # not 1, 2, 1, 2
    assert after.points[0]["loss"] != before.points[0]["loss"]  # seed 1's run, not seed 0's
    assert [e for e, _ in snapshots(StateDir(state), "ae")] == [0, 1, 2]


def test_a_history_cut_back_to_a_checkpoint_drops_later_rows_and_a_torn_line(tmp_path):
    path = tmp_path / "history.jsonl"
    start(path, {"stage": "ae"})
    with open(path, "a") as f:
        for step in (4, 8, 12):
            f.write(json.dumps({"kind": "point", "step": step, "loss": step / 10}) + "\n")
        f.write('{"kind": "point", "st')  # kill -9 in the middle of a line
    keep_until(path, 8, {"stage": "ae"})
    rows = read_lines(path)
    assert [r.get("step") for r in rows] == [None, 4, 8]
    keep_until(tmp_path / "none.jsonl", 16, {"stage": "ae"})  # a checkpoint of an earlier release
    assert read_lines(tmp_path / "none.jsonl") == [{"kind": "run", "stage": "ae", "from_step": 16}]


def test_best_epoch_follows_the_stages_rule():
    rows = [{"epoch": e, "metrics": {"val_loss": v}} for e, v in ((1, 0.9), (2, 0.7), (3, 0.8))]
    assert History("dit", {}, [], rows).best()[0]["epoch"] == 2
    rows = [{"epoch": e, "metrics": {"test_psnr": v}} for e, v in ((1, 20.0), (2, 25.0), (3, 24.0))]
    assert History("ae", {}, [], rows).best()[0]["epoch"] == 2
    assert History("ae", {}, [], []).best() is None


def test_status_shows_a_best_epoch_only_where_the_stage_names_one(trained_state, cli):
    """The student's figure rises or falls by design and the model kept is its last epoch's: no
    best epoch for it; the autoencoder and the DiT name theirs."""
    rows = json.loads(cli("status", "--json", "--state-dir", trained_state).out)["stages"]
    best = {r["stage"]: r["best"] for r in rows}
    assert best["encode"] == "" and best["distill"] == ""
    for stage in ("ae", "dit"):
        assert best[stage].split(" ")[0] in ("1/2", "2/2")
    assert History("distill", {}, [], [{"epoch": 1, "metrics": {"judge_acc": 0.9}}]).best() is None
    assert "best epoch" in cli("status", "--state-dir", trained_state).out


# ---- ddream plot ---------------------------------------------------------------------------------
def test_plot_draws_the_curves_and_a_learning_gif_per_stage(trained_state, tmp_path, cli):
    out = tmp_path / "pictures"
    res = cli("plot", "--state-dir", trained_state, "--out", out)
    assert res.code == 0, res.err
    assert str(out) in res.out
    curves = iio.imread(out / "curves.png")
    assert curves.shape[0] > 600 and curves.std() > 10
    for stage in TRAINED:
        frames = iio.imread(out / f"{stage}-learning.gif", index=None)
        assert len(frames) == 3  # untrained, epoch 1, epoch 2
        assert not np.array_equal(frames[0], frames[-1])


def test_all_leaves_the_pictures_in_the_state_dir(trained_state):
    names = sorted(p.name for p in (trained_state / "plots").iterdir())
    assert names == [
        "ae-learning.gif", "curves.png", "distill-learning.gif", "dit-learning.gif", "report.html"
    ]  # fmt: skip
    page = (trained_state / "plots" / "report.html").read_text()
    assert '<img src="curves.png"' in page and '<img src="dit-learning.gif"' in page
    assert "<td>distill</td><td>done</td>" in page and "[distill]" in page  # stages, settings


def test_plot_without_matplotlib_is_one_line_naming_the_extra(
    trained_state, tmp_path, cli, monkeypatch
):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # as if never installed
    out = tmp_path / "pictures"
    res = cli("plot", "--state-dir", trained_state, "--out", out)
    assert res.code == 2 and res.err.count("\n") == 1 and "ddream[plot]" in res.err
    assert not out.exists()


def test_all_without_matplotlib_still_makes_the_gifs(
    trained_state, tmp_path, mnist_dir, cli, monkeypatch
):
    state = tmp_path / "copy"
    shutil.copytree(trained_state, state)
    shutil.rmtree(state / "plots")
    monkeypatch.setattr("ddream.stages.pipeline.have_matplotlib", lambda: False)
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
    assert res.code == 0, res.err
    assert f"how it learned: {state / 'plots'}/" in res.out and "ddream[plot]" in res.out
    assert sorted(p.name for p in (state / "plots").iterdir()) == [
        "ae-learning.gif", "distill-learning.gif", "dit-learning.gif", "report.html"
    ]  # fmt: skip


@pytest.mark.parametrize("where", ["a file", "no parent"])
def test_plot_with_a_bad_out_is_one_line_and_writes_nothing(trained_state, tmp_path, cli, where):
    out = {"a file": tmp_path / "taken.png", "no parent": tmp_path / "missing" / "pictures"}[where]
    if where == "a file":
        out.write_bytes(b"mine")
    res = cli("plot", "--state-dir", trained_state, "--out", out)
    assert res.code == 2 and res.err.count("\n") == 1 and "--out" in res.err
    assert sorted(p.name for p in tmp_path.iterdir()) == (
        ["taken.png"] if where == "a file" else []
    )


def test_plot_of_an_earlier_releases_state_dir_draws_what_it_has(trained_state, tmp_path, cli):
    state = tmp_path / "old"
    shutil.copytree(trained_state, state)
    for stage in TRAINED:  # what a state dir of the previous release holds: records only
        (state / stage / "history.jsonl").unlink()
        shutil.rmtree(state / stage / "snapshots")
    shutil.rmtree(state / "plots")
    res = cli("plot", "--state-dir", state)
    assert res.code == 0, res.err
    assert "earlier ddream" in res.out
    assert sorted(p.name for p in (state / "plots").iterdir()) == ["curves.png", "report.html"]
    assert json.loads(cli("status", "--json", "--state-dir", state).out)["stages"][2]["best"]


def test_plot_with_nothing_to_draw_says_so(tmp_path, cli):
    res = cli("plot", "--state-dir", tmp_path / "nothing")
    assert res.code == 2 and res.err.count("\n") == 1 and "ddream all" in res.err
    (tmp_path / "empty").mkdir()
    res = cli("plot", "--state-dir", tmp_path / "empty")
    assert res.code == 2 and "no training history" in res.err
    assert list((tmp_path / "empty").iterdir()) == []


# ---- --tensorboard -------------------------------------------------------------------------------
def test_tensorboard_without_the_extra_is_one_line_before_any_training(
    tmp_path, mnist_dir, cli, monkeypatch
):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    state = tmp_path / "state"
    res = cli(
        "train-ae",
        "--data-dir",
        mnist_dir,
        "--state-dir",
        state,
        "--tensorboard",
        tmp_path / "tb",
        *QUICK,
    )
    assert res.code == 2 and res.err.count("\n") == 1 and "ddream[tensorboard]" in res.err
    assert not state.exists() and not (tmp_path / "tb").exists()


def test_tensorboard_into_a_file_is_refused(tmp_path, mnist_dir, cli):
    (tmp_path / "tb").write_text("not a folder")
    res = cli(
        "train-ae",
        "--data-dir",
        mnist_dir,
        "--state-dir",
        tmp_path / "s",
        "--tensorboard",
        tmp_path / "tb",
        *QUICK,
    )
    assert res.code == 2 and "--tensorboard" in res.err and "is a file" in res.err


def test_the_log_table_of_a_settings_file_turns_snapshots_off(tmp_path, mnist_dir, cli):
    settings = tmp_path / "run.toml"
    settings.write_text("[log]\nsnapshots = false\nevery = 2\n[ae_train]\ngan_start = 2\n")
    state = tmp_path / "state"
    res = cli(
        "train-ae", "--config", settings, "--data-dir", mnist_dir, "--state-dir", state, *QUICK
    )
    assert res.code == 0, res.err
    hist = load_history(StateDir(state), "ae")
    assert [p["step"] for p in hist.points] == [2, 4, 6, 8]
    assert [r["phase"] for r in hist.epochs] == [
        "augmented + GAN (decoder alone)", "fine-tune + GAN"
    ]  # fmt: skip
    assert snapshots(StateDir(state), "ae") == []
