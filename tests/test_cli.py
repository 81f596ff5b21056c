"""The commands as a user meets them: outputs, determinism, and one-line errors with exit code 2."""

import os

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from ddream import __version__
from ddream.render import LABEL_WIDTH
from ddream.state import StateDir


def test_version_and_help(cli):
    import re

    import typer

    from ddream.cli import app

    assert cli("--version").out.strip() == f"ddream {__version__}"
    res = cli("--help")
    # the commands table lists every command with its first help line (not just the intro text)
    listed = set(re.findall(r"^│ ([a-z][a-z-]+) +\S", res.out, re.M))
    commands = typer.main.get_command(app).commands
    assert listed == set(commands)
    for name, command in commands.items():
        first = command.help.split("\n")[0][:30]
        assert first in " ".join(res.out.split()), name
        assert "Example:" in cli(name, "--help").out, name


def test_sample_writes_grid_gif_and_npz(trained_state, tmp_path, cli):
    res = cli(
        "sample",
        "--state-dir",
        trained_state,
        "--device",
        "cpu",
        "--model",
        "teacher",
        "--steps",
        "5",
        "--n",
        "30",
        "-c",
        "3",
        "-c",
        "8",
        "--grid",
        tmp_path / "g.png",
        "--gif",
        tmp_path / "t.gif",
        "--npz",
        tmp_path / "s.npz",
    )
    assert res.code == 0, res.err
    data = np.load(tmp_path / "s.npz")
    assert data["images"].dtype == np.uint8 and data["images"].shape == (30, 28, 28)
    assert data["labels"].dtype == np.int64 and data["labels"].tolist() == [3] * 15 + [8] * 15
    grid = iio.imread(tmp_path / "g.png")
    # one class a row, 28-pixel cells, 2-pixel gaps, a label column on the left
    assert grid.shape == (2 * 30 + 2, LABEL_WIDTH + 15 * 30 + 2)
    assert grid[:, :LABEL_WIDTH].max() > 150  # the row labels are drawn
    bare = cli(
        "sample",
        "--state-dir",
        trained_state,
        "--device",
        "cpu",
        "--model",
        "teacher",
        "--steps",
        "5",
        "--n",
        "30",
        "-c",
        "3",
        "-c",
        "8",
        "--grid",
        tmp_path / "bare.png",
        "--no-labels",
    )
    assert bare.code == 0 and iio.imread(tmp_path / "bare.png").shape == (62, 15 * 30 + 2)
    with Image.open(tmp_path / "t.gif") as gif:
        assert gif.n_frames == 6 and gif.info.get("loop") == 0  # noise + 5 steps, looping
        gif.seek(gif.n_frames - 1)
        assert gif.info["duration"] >= 1000  # the final frame is held


def test_same_seed_same_digits_other_seed_other_digits(trained_state, tmp_path, cli):
    def draw(seed, name):
        out = tmp_path / name
        assert (
            cli(
                "sample",
                "--state-dir",
                trained_state,
                "--device",
                "cpu",
                "--n",
                "20",
                "--seed",
                seed,
                "--npz",
                out,
            ).code
            == 0
        )
        return np.load(out)["images"]

    a, b, c = draw("7", "a.npz"), draw("7", "b.npz"), draw("8", "c.npz")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize(
    "args,match",
    [
        (["--n", "0"], "--n"),
        (["--steps", "0"], "--steps"),
        (["--cfg", "nan"], "--cfg"),
        (["--cfg", "inf"], "--cfg"),
        (["-c", "10"], "--class"),
        (["--solver", "rk9"], "--solver"),
        (["--grid", "/nonexistent/dir/x.png"], "does not exist"),
        (["--grid", "x.jpg"], ".png"),
        (["--device", "tpu"], "device"),
    ],
)
def test_bad_sample_options_give_one_line_and_exit_2(
    trained_state, tmp_path, cli, args, match, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    res = cli("sample", "--state-dir", trained_state, *args)
    assert res.code == 2, res
    assert res.err.count("\n") == 1 and match in res.err and "Traceback" not in res.err
    assert list(tmp_path.iterdir()) == []


def test_commands_that_need_a_model_say_which_stage_to_run(tmp_path, cli):
    img = tmp_path / "d.png"
    Image.fromarray(np.pad(np.full((10, 4), 255, np.uint8), 9)).save(img)
    res = cli("reconstruct", img, "--state-dir", tmp_path / "empty")
    assert res.code == 1 and "ddream train-ae" in res.err and res.err.count("\n") == 1
    res = cli("sample", "--state-dir", tmp_path / "empty", "--grid", tmp_path / "x.png")
    assert (
        res.code == 1 and "ddream train-ae` and the stages after it" in res.err
    )  # the first missing
    res = cli("train-dit", "--state-dir", tmp_path / "empty", "--profile", "quick")
    assert res.code == 1 and "ddream train-ae" in res.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png"]  # nothing written, no folder


def test_a_missing_dit_after_a_done_encode_asks_for_train_dit(trained_state, tmp_path, cli):
    import shutil

    state = tmp_path / "state"
    shutil.copytree(trained_state, state)
    StateDir(state).drop_record("dit")
    res = cli("sample", "--state-dir", state, "--grid", tmp_path / "x.png")
    assert res.code == 1 and "run `ddream train-dit` first" in res.err


def test_reconstruct_writes_side_by_side_pictures_beside_the_inputs(trained_state, tmp_path, cli):
    rng = np.random.default_rng(0)
    paths = []
    for name, size, mode in (
        ("a b.png", (37, 23), "L"),
        ("ü.jpg", (90, 160), "RGB"),
        ("c.bmp", (28, 28), "L"),
    ):
        arr = np.full(size, 255, np.uint8)  # dark on light: a black stroke on white
        arr[size[0] // 4 : 3 * size[0] // 4, size[1] // 3 : size[1] // 3 + max(3, size[1] // 8)] = 0
        arr = np.clip(arr.astype(int) + rng.integers(-10, 10, size), 0, 255).astype(np.uint8)
        Image.fromarray(arr).convert(mode).save(tmp_path / name)
        paths.append(tmp_path / name)
    res = cli("reconstruct", *paths, "--state-dir", trained_state, "--device", "cpu")
    assert res.code == 0, res.err
    assert res.out.count("PSNR") == 3
    assert res.out.count("autoencoder's decoder") == 3  # says which decoder reconstructed it
    for p in paths:
        out = iio.imread(p.with_name(p.stem + ".recon.png"))
        assert out.shape == (4 * 32, 4 * 62)  # two 28-pixel cells with gaps, zoomed 4x


def test_reconstruct_test_digits_grid(trained_state, mnist_dir, tmp_path, cli):
    out = tmp_path / "r.png"
    res = cli(
        "reconstruct",
        "--test",
        "20",
        "--out",
        out,
        "--data-dir",
        mnist_dir,
        "--state-dir",
        trained_state,
        "--device",
        "cpu",
        "--scale",
        "1",
    )
    assert res.code == 0, res.err
    assert "PSNR" in res.out and iio.imread(out).shape == (4 * 30 + 2, 10 * 30 + 2)


@pytest.mark.parametrize("make", ["missing", "not-an-image", "empty", "folder"])
def test_reconstruct_bad_input_gives_one_line_exit_2_and_writes_nothing(
    trained_state, tmp_path, cli, make
):
    target = tmp_path / "in.png"
    if make == "not-an-image":
        target.write_text("hello")
    elif make == "empty":
        target.write_bytes(b"")
    elif make == "folder":
        target.mkdir()
    good = tmp_path / "good.png"
    Image.fromarray(np.pad(np.full((10, 4), 255, np.uint8), 9)).save(good)
    before = sorted(tmp_path.iterdir())
    res = cli("reconstruct", good, target, "--state-dir", trained_state, "--device", "cpu")
    assert res.code == 2 and res.err.count("\n") == 1 and "Traceback" not in res.err
    assert "in.png" in res.err
    assert sorted(tmp_path.iterdir()) == before  # not even the good image's output


def test_bad_data_dir_is_named(tmp_path, cli):
    res = cli(
        "train-ae", "--profile", "quick", "--data-dir", tmp_path, "--state-dir", tmp_path / "s"
    )
    assert res.code == 2 and "train-images-idx3-ubyte" in res.err and "Traceback" not in res.err
    res = cli("train-ae", "--data-dir", tmp_path / "nope", "--state-dir", tmp_path / "s")
    assert res.code == 2 and "is not a folder" in res.err


def test_a_second_writer_is_refused_by_the_cli(trained_state, mnist_dir, tmp_path, cli):
    state = StateDir(tmp_path / "s")
    with state.locked("train-ae"):
        res = cli("all", "--profile", "quick", "--data-dir", mnist_dir, "--state-dir", state.root)
        assert res.code == 1 and f"pid {os.getpid()}" in res.err
        # read-only commands still work while a writer holds the lock
        assert cli("status", "--state-dir", state.root).code == 0
        assert (
            cli(
                "sample",
                "--state-dir",
                trained_state,
                "--device",
                "cpu",
                "--npz",
                tmp_path / "x.npz",
            ).code
            == 0
        )


def test_unknown_profile_and_bad_latent_channels(tmp_path, cli):
    res = cli("train-ae", "--profile", "huge", "--state-dir", tmp_path)
    assert res.code == 2 and "quick" in res.err
    res = cli("train-ae", "--latent-channels", "7", "--state-dir", tmp_path)
    assert res.code == 2 and "latent channels" in res.err


def test_config_file_sets_options_and_flags_override_it(trained_state, mnist_dir, tmp_path, cli):
    import json
    import shutil

    state = tmp_path / "state"
    shutil.copytree(trained_state, state)
    config = tmp_path / "run.toml"
    config.write_text(
        f'profile = "quick"\ndata-dir = "{mnist_dir}"\nseed = 9\ndevice = "cpu"\nquiet = true\n'
    )
    res = cli("all", "--config", config, "--seed", "0", "--state-dir", state)
    assert res.code == 0, res.err
    report = json.loads(cli("status", "--json", "--state-dir", state).out)
    assert report["run"]["command"] == "all"
    assert report["run"]["options"]["seed"] == 0  # the flag won over the file
    assert report["run"]["options"]["profile"] == "quick"  # the file won over the default
    assert [s["status"] for s in report["stages"]] == ["done"] * 4  # seed 0 = the trained state
    assert "last run: ddream all" in cli("status", "--state-dir", state).out


@pytest.mark.parametrize(
    "text,match",
    [
        ("epochz = 3\n", "has no option 'epochz'"),
        ("profile = \n", "not valid TOML"),
        ("[ae]\nepochs = 1\n", "[ae] has no setting 'epochs' (it has: arch, widths"),
        ("[autoencoder]\nwidths = [8]\n", "no settings table [autoencoder]; the tables are [ae]"),
        ("[sample]\nsteps = 'two'\n", "[sample] steps = 'two': expected a whole number"),
        ("[sample]\nsteps = 0\n", "SampleConfig: steps must be above 0"),
        ("n = 0\n", "--n"),
    ],
)
def test_bad_config_files_give_one_line(tmp_path, cli, text, match):
    config = tmp_path / "run.toml"
    config.write_text(text)
    res = cli("sample", "--config", config, "--state-dir", tmp_path)
    assert res.code == 2 and match in res.err and res.err.count("\n") == 1


def test_interpolate_classes_morphs_in_a_looping_gif(trained_state, tmp_path, cli):
    res = cli(
        "sample",
        "--state-dir",
        trained_state,
        "--device",
        "cpu",
        "--interpolate",
        "3",
        "8",
        "--frames",
        "6",
        "--model",
        "teacher",
        "--steps",
        "4",
        "--gif",
        tmp_path / "m.gif",
        "--grid",
        tmp_path / "m.png",
    )
    assert res.code == 0, res.err
    with Image.open(tmp_path / "m.gif") as gif:
        assert gif.info.get("loop") == 0 and gif.size == (10 * 30 + 2, 32)
        # 6 frames there and 4 back at 90 ms; GIF writers merge identical neighbours, adding up
        # their durations, so the total length is what stays fixed. (How many frames differ is the
        # model's business: the quick one barely tells classes apart; test_serve checks that a
        # morph moves.)
        total = 0
        for i in range(gif.n_frames):
            gif.seek(i)
            total += gif.info["duration"]
        assert total == (6 + 4) * 90
    assert iio.imread(tmp_path / "m.png").shape == (10 * 30 + 2, 6 * 30 + 2)  # a row per digit


def test_interpolate_seeds_starts_at_the_first_seed(trained_state, tmp_path, cli):
    assert (
        cli(
            "sample",
            "--state-dir",
            trained_state,
            "--device",
            "cpu",
            "--interpolate",
            "5",
            "6",
            "--between",
            "seeds",
            "-c",
            "4",
            "--n",
            "3",
            "--frames",
            "3",
            "--model",
            "teacher",
            "--steps",
            "4",
            "--grid",
            tmp_path / "m.png",
        ).code
        == 0
    )
    assert (
        cli(
            "sample",
            "--state-dir",
            trained_state,
            "--device",
            "cpu",
            "-c",
            "4",
            "--n",
            "3",
            "--model",
            "teacher",
            "--steps",
            "4",
            "--seed",
            "5",
            "--npz",
            tmp_path / "s.npz",
        ).code
        == 0
    )
    strip = iio.imread(tmp_path / "m.png")
    first_digit = strip[2:30, 2:30].astype(int)  # row 0, frame 0
    plain = np.load(tmp_path / "s.npz")["images"][0].astype(int)
    assert np.abs(first_digit - plain).mean() < 1.0


@pytest.mark.parametrize(
    "args,match",
    [
        (["--interpolate", "3", "12"], "classes are 0-9"),
        (["--interpolate", "3"], "--interpolate"),
        (["--interpolate", "1", "2", "--npz", "x.npz"], "--npz"),
        (["--between", "noise"], "--between"),
    ],
)
def test_bad_interpolate_options(trained_state, tmp_path, cli, monkeypatch, args, match):
    monkeypatch.chdir(tmp_path)
    res = cli("sample", "--state-dir", trained_state, *args)
    assert res.code == 2 and match in res.err and list(tmp_path.iterdir()) == []


def test_a_shared_option_named_bare_gets_its_one_declaration():
    """cli_app.shared: a bare keyword-only name takes SHARED's declaration and default; a declared
    parameter keeps its own; every command's --state-dir reads the same declaration."""
    import inspect

    import typer

    from ddream.cli import app
    from ddream.cli_app import SHARED, shared

    def command(n: int = 3, *, state_dir, quiet) -> None: ...

    sig = inspect.signature(shared(command)).parameters
    assert (sig["state_dir"].annotation, sig["state_dir"].default) == SHARED["state_dir"]
    assert (sig["quiet"].annotation, sig["quiet"].default) == SHARED["quiet"]
    assert sig["n"].annotation is int and sig["n"].default == 3
    helps = {
        name: next(p.help for p in cmd.params if p.name == "state_dir")
        for name, cmd in typer.main.get_command(app).commands.items()
    }
    assert len(set(helps.values())) == 1, helps
