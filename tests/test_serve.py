"""`ddream serve`: the page's handlers as plain functions, the launched app through gradio_client, and
one real browser (headless Chromium) pressing Generate and drawing on the sketchpad."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import struct
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from ddream.demo import MAX_COUNT, Demo
from ddream.errors import BadInput
from ddream.stages.evaluate import write_report

CPU = torch.device("cpu")


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under `folder`: size, mtime and sha256, to prove nothing was written."""
    return {
        str(p.relative_to(folder)): (
            p.stat().st_size,
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def stroke(size: int = 280) -> np.ndarray:
    """What the sketchpad hands over: RGBA, transparent, one black stroke (a '1')."""
    im = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(im).line([(140, 40), (150, 240)], fill=(0, 0, 0, 255), width=20)
    return np.asarray(im)


@pytest.fixture(scope="module")
def demo(trained_state):
    d = Demo(trained_state, CPU)
    yield d
    d.close()


# ---- handlers ---------------------------------------------------------------------------------------
def test_generate_draws_a_labelled_grid_and_its_trajectory_deterministically(demo):
    picture, gif, caption = demo.generate(["3", "8"], 6, 7, "student", 0, 0)
    assert picture.dtype == np.uint8 and picture.ndim == 2
    assert picture.shape[0] == 2 * (2 * 30 + 2)  # two class rows of 28 + 2 pad, zoom 2
    frames = iio.imread(gif, index=None)
    assert len(frames) == 12  # the student's straight path, as `sample --gif` draws it
    assert "6 digits from the student (1 euler step, guidance 1.0), seed 7" in caption
    again, _, _ = demo.generate(["8", "3"], 6, 7, "student", None, None)  # order, unset: same
    assert np.array_equal(picture, again)
    other, _, _ = demo.generate(["3", "8"], 6, 8, "student", 0, 0)
    assert not np.array_equal(picture, other)


def test_generate_turns_the_students_guidance_dial(demo):
    _, _, caption = demo.generate([5], 4, 0, "student", 0, 1.75)
    assert "from the student (1 euler step, guidance 1.75)" in caption


def test_the_dial_draws_the_same_noise_a_row_per_scale(demo):
    picture, caption = demo.dial(["3", "8"], 4, "student")
    assert "guidance 1, 1.25, 1.5, 1.75, 2 (a row each)" in caption
    assert picture.shape[0] == 2 * (5 * 30 + 2)  # five rows of 28 + 2 pad, zoom 2
    again, _ = demo.dial(["8", "3"], 4, None)  # same classes, the default model: same picture
    assert np.array_equal(picture, again)
    teacher, caption = demo.dial(["3"], 4, "teacher")
    assert "guidance 1, 1.5, 2, 2.5, 3" in caption
    top, bottom = teacher[4 : 4 + 56], teacher[4 + 4 * 60 : 4 + 4 * 60 + 56]
    assert not np.array_equal(top, bottom)  # the teacher's 1 and 3 draw other digits
    with pytest.raises(BadInput, match="pick at least one class"):
        demo.dial([], 0, "student")


def test_generate_with_the_teacher_takes_its_steps_and_guidance(demo):
    _, gif, caption = demo.generate([5], 4, 0, "teacher", 3, 2.0)
    assert "from the teacher (3 heun steps, guidance 2.0)" in caption
    assert len(iio.imread(gif, index=None)) == 4  # noise + 3 steps


@pytest.mark.parametrize(
    "args, match",
    [
        (([], 4, 0, "student", 0, 0), "pick at least one class"),
        ((["12"], 4, 0, "student", 0, 0), "class 12"),
        ((["1"], 0, 0, "student", 0, 0), "count 0"),
        ((["1"], MAX_COUNT + 1, 0, "student", 0, 0), "count 401"),
        ((["1"], "many", 0, "student", 0, 0), "count: give a whole number"),
        ((["1"], 2.5, 0, "student", 0, 0), "count 2.5"),
        ((["1"], 4, -1, "student", 0, 0), "seed -1"),
        ((["1"], 4, 0, "teacher", 51, 0), "steps 51"),
        ((["1"], 4, 0, "teacher", 2, float("nan")), "guidance nan"),
        ((["1"], 4, 0, "teacher", 2, float("inf")), "guidance inf"),
        ((["1"], 4, 0, "teacher", 2, 11), "guidance 11"),
        ((["1"], 4, 0, "bogus", 0, 0), "model 'bogus'"),
        ((["1"], 4, 0, "student", 3, 0), "steps 3: the student draws in one step"),
        ((["1"], 4, 0, "student", 0, 2.5), "guidance 2.5: the student learned guidance 1 to 2"),
        ((["1"], 4, 0, "student", 0, 0.5), "use the teacher model for others"),
    ],
)
def test_generate_refuses_bad_controls_in_one_line(demo, args, match):
    with pytest.raises(BadInput, match=match) as err:
        demo.generate(*args)
    assert "\n" not in str(err.value) and "--" not in str(err.value)  # page words, not CLI flags


def test_draw_frames_reconstructs_like_the_cli_and_draws_the_class_meant(
    demo, trained_state, tmp_path, cli
):
    framed, recon, text, row = demo.draw({"composite": stroke()}, None, "7")
    assert framed.shape == recon.shape == (224, 224)
    assert framed.max() == 255 and framed[:16].max() == 0  # white on black, MNIST's empty border
    assert "digits the student draws as a 7" in text
    assert row.ndim == 2 and row.shape[1] > row.shape[0]  # a grid of 8, two rows of 4
    # the same drawing through `ddream reconstruct`: the same framing and the same PSNR
    Image.fromarray(stroke()).save(tmp_path / "one.png")
    res = cli("reconstruct", tmp_path / "one.png", "--state-dir", trained_state, "--device", "cpu")
    assert res.code == 0
    cli_psnr = res.out.split("PSNR ")[1].split(" dB")[0]
    assert f"PSNR {cli_psnr} dB" in text
    # an uploaded file takes precedence over the pad
    _, _, up_text, _ = demo.draw(None, str(tmp_path / "one.png"), 1)
    assert f"PSNR {cli_psnr} dB" in up_text


def _png_bomb(path: Path) -> None:
    """A PNG whose header claims 8000 x 8000 pixels (over MAX_PIXELS, under PIL's own limit)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 8000, 8000, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 10))
        + chunk(b"IEND", b"")
    )


def test_draw_refuses_empty_sketches_and_bad_uploads(demo, tmp_path):
    blank = np.zeros((280, 280, 4), dtype=np.uint8)
    with pytest.raises(BadInput, match="the drawing holds no digit"):
        demo.draw({"composite": blank}, None, 3)
    for empty in (None, {"composite": None}, {}):
        with pytest.raises(BadInput, match="draw a digit on the pad"):
            demo.draw(empty, None, 3)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(BadInput, match="notes.png is not an image") as err:
        demo.draw(None, str(tmp_path / "notes.png"), 3)
    assert str(tmp_path) not in str(err.value)  # the file as the person named it
    _png_bomb(tmp_path / "huge.png")
    with pytest.raises(BadInput, match="refuses images over"):
        demo.draw(None, {"path": str(tmp_path / "huge.png")}, 3)
    with pytest.raises(BadInput, match="refuses images over"):
        demo.draw({"composite": np.broadcast_to(blank[:1, :1], (8000, 8000, 4))}, None, 3)
    with pytest.raises(BadInput, match="not an image"):
        demo.draw({"composite": np.zeros((5, 5, 7))}, None, 3)
    with pytest.raises(BadInput, match="the digit you meant 10"):
        demo.draw({"composite": stroke()}, None, 10)


def test_morph_slides_between_classes_and_animates_between_seeds(demo):
    at0 = demo.morph_at("classes", 3, 8, 5, 0, "student", 0.0)
    at1 = demo.morph_at("classes", 3, 8, 5, 0, "student", 1.0)
    assert at0.shape == at1.shape and not np.array_equal(at0, at1)
    # w = 0 is the "from" class alone: whatever the "to" class, the same digits
    assert np.array_equal(at0, demo.morph_at("classes", 3, 5, 5, 0, "student", 0.0))
    gif = demo.morph_gif("seeds", 1, 2, 5, 0, "teacher", 5)
    assert len(iio.imread(gif, index=None)) == 2 * 5 - 2  # there and back, no repeated ends
    for args, match in [
        (("classes", 3, 8, 5, 0, "student", 1.5), "position 1.5"),
        (("sideways", 3, 8, 5, 0, "student", 0.5), "choose classes or seeds"),
        (("classes", 3, 10, 5, 0, "student", 0.5), "to class 10"),
        (("seeds", 1, 2, 11, 0, "student", 0.5), "class 11"),
    ]:
        with pytest.raises(BadInput, match=match):
            demo.morph_at(*args)
    with pytest.raises(BadInput, match="frames 41"):
        demo.morph_gif("seeds", 1, 2, 5, 0, "student", 41)


def test_model_card_says_what_status_and_the_last_eval_know(trained_state, tmp_path):
    state = tmp_path / "state"
    shutil.copytree(trained_state, state)
    d = Demo(state, CPU)
    try:
        card = d.model_card()
        for stage in ("ae", "encode", "dit", "distill"):
            assert f"| {stage} | done |" in card
        assert "No `ddream eval` yet" in card
        write_report(
            d.state,
            {
                "generation": {
                    "fid": 4.25,
                    "class_accuracy": 0.991,
                    "precision": 0.8,
                    "recall": 0.7,
                },
                "reconstruction": {"psnr": 28.1},
                "samples": 1000,
                "model": "student",
                "steps": 1,
                "solver": "euler",
                "cfg": 1.5,
            },
        )
        card = d.model_card()
        assert "| 4.25 | 99.10% | 0.800 | 0.700 | 28.10 dB |" in card
    finally:
        d.close()


def test_the_training_tab_shows_the_curves_and_how_each_stage_learned(demo, monkeypatch):
    curves, ae, dit, student, caption = demo.training()
    assert np.asarray(Image.open(curves)).shape[0] > 600
    frames = iio.imread(dit, index=None)
    assert len(frames) == 3 and not np.array_equal(frames[0], frames[-1])  # untrained, 1, 2
    assert ae and student and caption.count("best epoch") == 2  # none for the student
    monkeypatch.setattr("ddream.plots.import_matplotlib", _no_matplotlib)
    curves, *gifs, caption = demo.training()
    assert curves is None and all(gifs) and "ddream[plot]" in caption


def _no_matplotlib():
    from ddream.errors import BadInput
    from ddream.plots import PLOT_HINT

    raise BadInput(PLOT_HINT)


def test_handlers_write_nothing_into_the_state_dir_and_serve_concurrent_calls(trained_state):
    before = snapshot(trained_state)
    d = Demo(trained_state, CPU)
    try:
        serial = [d.generate([k], 5, k, "student", 0, 0)[0] for k in range(6)]
        with ThreadPoolExecutor(6) as pool:
            parallel = list(pool.map(lambda k: d.generate([k], 5, k, "student", 0, 0)[0], range(6)))
        assert all(np.array_equal(a, b) for a, b in zip(serial, parallel, strict=True))
        d.draw({"composite": stroke()}, None, 2)
        d.morph_gif("classes", 1, 7, 0, 0, "teacher", 3)
        d.model_card()
        workdir = d.workdir
    finally:
        d.close()
    assert snapshot(trained_state) == before
    assert not workdir.exists()


# ---- the command --------------------------------------------------------------------------------------
def test_serve_refuses_missing_stages_like_sample_and_warns_for_the_network(cli, tmp_path):
    empty = tmp_path / "nothing"
    served = cli("serve", "--state-dir", empty, "--host", "0.0.0.0", "--device", "cpu")
    sampled = cli("sample", "--state-dir", empty, "--device", "cpu")
    assert served.code == sampled.code == 1
    assert served.err.splitlines()[-1] == sampled.err.strip()
    assert "reachable from the network" in served.err.splitlines()[0]
    assert not empty.exists()


def test_serve_refuses_a_corrupt_model_like_sample(cli, trained_state, tmp_path):
    state = tmp_path / "state"
    shutil.copytree(trained_state, state)
    model = state / "ae" / "model.safetensors"  # the page needs the autoencoder (Draw)
    data = bytearray(model.read_bytes())
    data[-100] ^= 0xFF
    model.write_bytes(bytes(data))
    served = cli("serve", "--state-dir", state, "--device", "cpu", "--port", free_port())
    sampled = cli(
        "sample", "--state-dir", state, "--device", "cpu", "--grid", tmp_path / "g.png",
        "--model", "teacher",
    )  # fmt: skip
    assert served.code == sampled.code != 0
    assert served.err.strip() == sampled.err.strip() and "ae/model.safetensors" in served.err


def test_a_page_without_its_teacher_serves_the_student_and_says_why(trained_state, tmp_path):
    state = tmp_path / "state"
    shutil.copytree(trained_state, state)
    (state / "dit" / "model.safetensors").write_bytes(b"damaged")
    d = Demo(state, CPU)
    try:
        assert list(d.samplers) == ["student"]
        assert "**teacher unavailable**" in d.model_card()
        with pytest.raises(BadInput, match="model 'teacher': this state dir has student"):
            d.generate([1], 2, 0, "teacher", 0, 0)
        assert d.generate([1], 2, 0, "student", 0, 0)[0].size
    finally:
        d.close()


def test_serve_without_gradio_says_how_to_install_it(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    res = cli("serve", "--state-dir", tmp_path)
    assert res.code == 2
    assert res.err.strip() == (
        "error: ddream serve needs Gradio: pip install 'ddream[serve]' "
        "(in a checkout: pip install -e '.[serve]')"
    )


def test_serve_refuses_bad_ports(cli, tmp_path):
    res = cli("serve", "--state-dir", tmp_path, "--port", "70000")
    assert res.code == 2 and "--port" in res.err


# ---- the launched page --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(demo):
    from ddream.page import serve

    port = free_port()
    page = serve(demo, "127.0.0.1", port, block=False, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    page.close()


def test_the_page_prunes_its_files_and_gradios_copies_of_what_it_served(demo):
    import time as clock

    from ddream.demo import IN_FLIGHT_S, KEEP_FILES
    from ddream.page import CACHE_PRUNE, build

    every, older_than = build(demo).delete_cache  # Gradio's own cache, wherever it is, by age
    assert (every, older_than) == CACHE_PRUNE and 0 < every <= 3600 and 0 < older_than <= 86400
    copies = demo.workdir / "gradio" / "abc"  # where `ddream serve` has Gradio keep its copies
    copies.mkdir(parents=True, exist_ok=True)
    old = clock.time() - 2 * IN_FLIGHT_S
    for i in range(KEEP_FILES + 10):
        p = copies / f"old{i}.png"
        p.write_bytes(b"x")
        os.utime(p, (old, old))
    demo.generate(["1"], 2, 0, "student", 0, 0)  # writes a GIF, pruning first
    left = [p for p in demo.workdir.rglob("*") if p.is_file()]
    assert len(left) <= KEEP_FILES and any(p.suffix == ".gif" for p in left)


def test_a_taken_port_is_one_line(demo):
    from ddream.page import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(BadInput, match=f"cannot serve on 127.0.0.1:{port}: the port is taken"):
            serve(demo, "127.0.0.1", port, block=False, quiet=True)


@pytest.mark.slow
def test_each_tab_answers_through_gradio_client_and_bad_requests_do_not_stop_it(served, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(served, verbose=False)
    grid_file, gif_file, caption = client.predict(
        ["3", "8"], 6, 7, "student", 0, 0, api_name="/generate"
    )
    assert np.asarray(Image.open(grid_file)).shape[0] == 2 * 62
    assert len(iio.imread(gif_file, index=None)) == 12
    assert caption.startswith("6 digits from the student")
    Image.fromarray(stroke()).save(tmp_path / "stroke.png")
    sketch = {"background": None, "layers": [], "composite": handle_file(tmp_path / "stroke.png")}
    framed, recon, text, row = client.predict(sketch, None, "4", api_name="/draw")
    assert text.startswith("PSNR ") and "as a 4" in text
    assert np.asarray(Image.open(recon)).shape == (224, 224)
    frame = client.predict("classes", 3, 8, "5", 0, "student", 0.5, api_name="/morph_at")
    assert np.asarray(Image.open(frame)).shape[1] > 8 * 28
    gif = client.predict("seeds", 1, 2, "5", 0, "student", 4, api_name="/morph")
    assert len(iio.imread(gif, index=None)) == 6
    assert "| distill | done |" in client.predict(api_name="/model")
    curves, *gifs, learned = client.predict(api_name="/training")
    assert np.asarray(Image.open(curves)).shape[0] > 600 and "best epoch" in learned
    assert [len(iio.imread(g, index=None)) for g in gifs] == [3, 3, 3]

    for args, match in [
        (([], 4, 0, "student", 0, 0), "pick at least one class"),
        ((["1"], 4, 0, "student", 7, 0), "the student draws in one step"),
    ]:
        with pytest.raises(Exception, match=match):
            client.predict(*args, api_name="/generate")
    blank = {"background": None, "layers": [], "composite": None}
    with pytest.raises(Exception, match="draw a digit on the pad"):
        client.predict(blank, None, "4", api_name="/draw")
    (tmp_path / "notes.png").write_bytes(b"plain text, not pixels")
    with pytest.raises(Exception, match="not an image"):
        client.predict(None, handle_file(tmp_path / "notes.png"), "4", api_name="/draw")

    # still serving, and several requests at once each get their own digits
    jobs = [client.submit([str(k)], 3, k, "student", 0, 0, api_name="/generate") for k in range(4)]
    captions = [job.result()[2] for job in jobs]
    assert [c.split("seed ")[1].split(",")[0] for c in captions] == ["0", "1", "2", "3"]


# ---- a real browser -----------------------------------------------------------------------------------
def _browser_or_skip():
    sys.path.insert(0, str(Path(__file__).parent))
    import browser

    required = os.environ.get("CI") or os.environ.get("DDREAM_REQUIRE_BROWSER") == "1"
    try:
        import selenium  # noqa: F401
    except ImportError:
        if required:
            raise
        pytest.skip("selenium is not installed (CI installs it; pip install -e '.[test]')")
    if browser.find_chromium() is None:
        if required:
            pytest.fail("CI must run the browser test: apt-get install chromium chromium-driver")
        pytest.skip(
            "no chromium/chromedriver here (CI installs them: apt-get install chromium chromium-driver)"
        )
    return browser


@pytest.mark.slow
def test_a_real_browser_generates_and_reconstructs_a_drawing(served, demo, tmp_path):
    browser = _browser_or_skip()
    driver = browser.open_browser()
    try:
        driver.get(served)
        shown = browser.generate(driver)
        page_default, _, _ = demo.generate([str(k) for k in range(10)], 40, 0, "student", 0, 0)
        assert shown["width"] == page_default.shape[1]  # the grid the controls' defaults draw
        assert "digits from the student" in shown["caption"]
        drawn = browser.draw_and_reconstruct(driver)
        assert drawn["caption"].startswith("PSNR ") and "draws as a 3" in drawn["caption"]
        edited = browser.edit_and_complete(driver)
        assert "redrawn as an 8 at strength 0.8 (10 teacher steps)" in edited["edit"]
        assert edited["complete"].startswith("given what was kept:")
        driver.save_screenshot(str(tmp_path / "page.png"))
        page = np.asarray(Image.open(io.BytesIO((tmp_path / "page.png").read_bytes())).convert("L"))
        assert page.shape[1] == 1280 and page.std() > 10  # the whole window, not a blank page
    finally:
        driver.quit()


# ---- what the page lets in and keeps ------------------------------------------------------------------
def test_the_temporary_folder_keeps_a_bounded_count_and_size_sparing_files_in_flight(tmp_path):
    import time as clock

    from ddream.demo import prune

    now = clock.time()
    for i in range(10):
        p = tmp_path / ("sub" if i % 2 else "") / f"f{i}.gif"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x" * 1000)
        age = 1000 - 100 * i  # f0 oldest; f9 and f8 younger than the in-flight window
        os.utime(p, (now - age, now - age))
    prune(tmp_path, keep=6, max_bytes=10_000, in_flight_s=250)
    assert sorted(p.name for p in tmp_path.rglob("*.gif")) == [f"f{i}.gif" for i in range(4, 10)]
    prune(tmp_path, keep=100, max_bytes=2500, in_flight_s=250)
    left = sorted(p.name for p in tmp_path.rglob("*.gif"))
    assert left == ["f8.gif", "f9.gif"]  # over the size cap, but in flight: spared


def test_the_pad_takes_a_composite_alone_checked_before_it_is_decoded(tmp_path):
    gr = pytest.importorskip("gradio")
    from gradio.components.image_editor import EditorData
    from gradio.data_classes import FileData

    from ddream.page import composite_only

    pad = composite_only(gr.Sketchpad(type="numpy", image_mode="RGBA", layers=False), gr)
    Image.fromarray(stroke()).save(tmp_path / "ok.png")
    Image.new("L", (6000, 6000)).save(tmp_path / "huge.png")  # small file, 36 megapixels
    (tmp_path / "eps.png").write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n")

    def payload(composite, layers=()):
        files = [FileData(path=str(tmp_path / name)) for name in layers]
        return EditorData(background=None, layers=files, composite=FileData(path=str(composite)))

    value = pad.preprocess(payload(tmp_path / "ok.png"))
    assert value["composite"].shape == (280, 280, 4) and value["layers"] == []
    # what the browser's pad sends: a background and its one layer, neither of them decoded
    browser = payload(tmp_path / "ok.png", ["huge.png"])
    browser.background = FileData(path=str(tmp_path / "huge.png"))
    value = pad.preprocess(browser)
    assert value["background"] is None and value["layers"] == []
    assert value["composite"].shape == (280, 280, 4)
    with pytest.raises(gr.Error, match="at most one layer"):
        pad.preprocess(payload(tmp_path / "ok.png", ["huge.png"] * 3))
    with pytest.raises(gr.Error, match="6000x6000 pixels"):
        pad.preprocess(payload(tmp_path / "huge.png"))
    with pytest.raises(gr.Error, match="not a picture"):
        pad.preprocess(payload(tmp_path / "eps.png"))


def test_a_surprise_on_the_page_shows_no_server_path():
    gr = pytest.importorskip("gradio")
    from ddream.page import on_page

    def handler():
        raise RuntimeError("/srv/secret/ddream-state/dit/model.safetensors went away")

    with pytest.raises(gr.Error) as info:
        on_page(handler, gr)()
    assert "RuntimeError" in str(info.value) and "/srv" not in str(info.value)


@pytest.mark.slow
def test_sigterm_stops_the_page_and_removes_its_temporary_folder(trained_state, tmp_path):
    pytest.importorskip("gradio")
    import subprocess
    import time as clock

    from conftest import ddream_command

    temp = tmp_path / "tmp"
    temp.mkdir()
    port = free_port()
    env = {**os.environ, "TMPDIR": str(temp)}
    cmd = ddream_command("serve", "--state-dir", trained_state, "--port", port, "--quiet")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = clock.time() + 180  # importing torch and Gradio on a busy machine
    while clock.time() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            clock.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[1]
    assert [p.name[:13] for p in temp.glob("ddream-serve-*")] == ["ddream-serve-"]
    proc.send_signal(15)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "stopped (SIGTERM)" in err, err
    assert not any(p.name.startswith("ddream-serve-") for p in temp.iterdir())


def test_the_page_names_no_server_path_and_its_sliders_span_the_loaded_models_ranges(demo):
    """The header and the model card say nothing of where the state dir lies; each page narrows the
    steps and guidance sliders to the picked model's own ranges (the student: one step, its dial) as
    it loads and as the model changes, while the server's take what any model takes (so a
    gradio_client call for the teacher is not refused by the student's range)."""
    from ddream.demo import MAX_GUIDANCE
    from ddream.page import build, controls_for

    page = build(demo)
    texts = [getattr(b, "value", "") for b in page.blocks.values()]
    root = str(demo.state.root)
    assert not any(root in str(t) for t in texts) and root not in demo.model_card()
    sliders = {b.elem_id: b for b in page.blocks.values() if getattr(b, "elem_id", None)}
    student = demo.samplers["student"].defaults
    lo, hi = student["cfg_range"]
    steps, guidance = controls_for(demo, "student")
    assert (guidance["minimum"], guidance["maximum"], guidance["value"]) == (lo, hi, student["cfg"])
    assert (steps["maximum"], steps["value"], steps["interactive"]) == (1, 1, False)
    teacher_steps, teacher_guidance = controls_for(demo, "teacher")
    assert teacher_guidance["maximum"] == MAX_GUIDANCE and teacher_steps["maximum"] > 1
    served = sliders["guidance-slider"], sliders["steps-slider"]
    assert (served[0].maximum, served[1].maximum) == (MAX_GUIDANCE, teacher_steps["maximum"])
    narrowing = [d for d in page.config["dependencies"] if d["targets"][0][1] in ("load", "change")
                 and len(d["outputs"]) == 2]  # fmt: skip
    assert {d["targets"][0][1] for d in narrowing} == {"load", "change"}
    default_grid, _, _ = demo.generate(list("0123456789"), 20, 0, "student", 0, 0)
    slider_grid, _, _ = demo.generate(list("0123456789"), 20, 0, "student", 1, student["cfg"])
    assert np.array_equal(default_grid, slider_grid)  # the sliders' values draw the defaults
