"""Random values of random types at every door (command-line options, settings tables, the page's
controls, hand-edited state.json records, image files): each ends in valid output, or in one line
and exit 2 (1 for a damaged state file) with nothing written; never a traceback. The API's arguments
are in test_limits.py."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ddream.errors import BadInput

FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TOKENS = st.one_of(
    st.integers(-5, 60).map(str),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "x", "1e308", "-0", "nan", "3.5", "9" * 30, "--n", "☃"]),
)


def one_line(res, codes=(2,)) -> None:
    """Refused with exit `codes` and one error line (a note before it, such as the fall-back from a
    stale student to the teacher, may stand)."""
    assert res.code in codes, (res.code, res.err)
    lines = [ln for ln in res.err.strip().splitlines() if not ln.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.err
    assert "Traceback" not in res.err and "Error:" not in res.err, res.err


@pytest.fixture(scope="module")
def outdir(tmp_path_factory):
    return tmp_path_factory.mktemp("out")


@FAST
@given(n=TOKENS, scale=TOKENS, cfg=TOKENS, steps=TOKENS, seed=TOKENS)
@example(n="4", scale="1", cfg="1.5", steps="2", seed="0")  # and one that draws
def test_sample_options(trained_state, outdir, cli, n, scale, cfg, steps, seed):
    out = outdir / "grid.png"
    out.unlink(missing_ok=True)
    args = ["sample", "--model", "teacher", "--n", n, "--scale", scale, "--cfg", cfg]
    args += ["--steps", steps, "--seed", seed, "--grid", out, "--state-dir", trained_state]
    res = cli(*args, "--device", "cpu", "-q")
    if res.code == 0:
        assert out.exists()
    else:
        one_line(res)
        assert not out.exists()


SETTING_VALUES = st.one_of(
    st.integers(-3, 5000),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.text(max_size=5).filter(lambda s: '"' not in s and "\\" not in s),
    st.lists(st.integers(-2, 70), max_size=6),
    st.lists(st.floats(0, 2, width=32), max_size=3),
)
SETTING_KEYS = st.sampled_from(
    [("ae", "widths"), ("ae", "blocks"), ("ae", "latent_channels"), ("dit", "width"),
     ("dit", "heads"), ("dit_train", "lr"), ("sample", "steps"), ("sample", "cfg"),
     ("sample", "cfg_interval"), ("distill", "decoder_widths"), ("ae_train", "rotate"),
     ("dit", "nope"), ("nowhere", "steps")]
)  # fmt: skip


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(v)


@FAST
@given(key=SETTING_KEYS, value=SETTING_VALUES)
@example(key=("sample", "steps"), value=4)
def test_settings_tables(tmp_path_factory, cli, key, value):
    folder = tmp_path_factory.mktemp("settings")
    (folder / "run.toml").write_text(f"[{key[0]}]\n{key[1]} = {toml_value(value)}\n")
    res = cli("config", "--config", folder / "run.toml", "--state-dir", folder / "state")
    if res.code != 0:
        one_line(res)
    assert not (folder / "state").exists()


CONTROLS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 500), st.integers(),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
    st.lists(st.sampled_from(["0", "3", "9", "12", "x", ""]), max_size=3),
)  # fmt: skip


@pytest.fixture(scope="module")
def demo(trained_state):
    from ddream.demo import Demo

    d = Demo(trained_state, torch.device("cpu"))
    yield d
    d.close()


@FAST
@given(classes=CONTROLS, count=CONTROLS, seed=CONTROLS, model=CONTROLS, steps=CONTROLS,
       guidance=CONTROLS)  # fmt: skip
@example(classes=["3"], count=4, seed=0, model="teacher", steps=2, guidance=1.5)
def test_page_controls(demo, classes, count, seed, model, steps, guidance):
    try:
        picture, gif, caption = demo.generate(classes, count, seed, model, steps, guidance)
    except BadInput as e:
        assert "\n" not in str(e)
        return
    assert picture.dtype == np.uint8 and picture.ndim == 2 and caption


@FAST
@given(between=CONTROLS, start=CONTROLS, end=CONTROLS, position=CONTROLS)
@example(between="classes", start=3, end=8, position=0.5)
def test_page_morph_controls(demo, between, start, end, position):
    try:
        frame = demo.morph_at(between, start, end, 5, 0, "student", position)
    except BadInput as e:
        assert "\n" not in str(e)
        return
    assert frame.dtype == np.uint8


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)  # fmt: skip
RECORD_FIELDS = st.sampled_from(
    ["status", "config", "inputs", "outputs", "metrics", "epoch", "epochs", "wall_time", "previous",
     "closing", "history"]
)  # fmt: skip


@FAST
@given(stage=st.sampled_from(["ae", "encode", "dit", "distill"]), field=RECORD_FIELDS,
       value=JSON_VALUES)  # fmt: skip
@example(stage="dit", field="history", value=[])
def test_hand_edited_records(trained_state, tmp_path_factory, cli, stage, field, value):
    state = tmp_path_factory.mktemp("edited") / "state"
    shutil.copytree(trained_state, state)
    data = json.loads((state / "state.json").read_text())
    data["stages"][stage][field] = value
    (state / "state.json").write_text(json.dumps(data))
    for command in (
        ["status"],
        ["sample", "--n", "3", "--npz", state / "x.npz", "--device", "cpu"],
    ):
        res = cli(*command, "--state-dir", state)
        if res.code != 0:
            one_line(res, codes=(1, 2))


def _stroke_png() -> bytes:
    import io

    from PIL import Image, ImageDraw

    im = Image.new("L", (60, 60), 255)
    ImageDraw.Draw(im).line([(30, 8), (32, 52)], fill=0, width=6)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


STROKE_PNG = _stroke_png()


@FAST
@given(data=st.binary(max_size=300), prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"GIF89a",
       b"BM", b"\xff\xd8\xff", b"II*\x00", b"%!PS-Adobe-3.0 EPSF"]))  # fmt: skip
@example(data=STROKE_PNG, prefix=b"")
def test_image_files(trained_state, tmp_path_factory, cli, data, prefix):
    folder = tmp_path_factory.mktemp("img")
    (folder / "digit.png").write_bytes(prefix + data)
    res = cli("reconstruct", folder / "digit.png", "--state-dir", trained_state, "--device", "cpu")
    if res.code == 0:
        assert (folder / "digit.recon.png").exists()
    else:
        one_line(res)
        assert not (folder / "digit.recon.png").exists()
