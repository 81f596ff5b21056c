"""One set of limits for every door: values that size memory or time are refused with one line, before
any work, whether they come from a flag, a settings file, the Python API or the page."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ddream
from ddream.errors import BadInput
from ddream.limits import MAX_GUIDANCE, check_picture, grid_pixels, number, whole
from ddream.render import grid

CPU = ["--device", "cpu"]


def one_line_refusal(res) -> None:
    assert res.code == 2, (res.code, res.err)
    assert len(res.err.strip().splitlines()) == 1 and "Traceback" not in res.err


def test_whole_and_number_take_what_reads_as_one_and_refuse_the_rest():
    assert whole(3, "n", 1, 5) == 3 and whole(3.0, "n", 1, 5) == 3 and whole("4", "n", 1, 5) == 4
    for bad in (0, 6, 2.5, "x", None, True, float("nan"), float("inf"), 10**400, [1]):
        with pytest.raises(BadInput, match="^n"):
            whole(bad, "n", 1, 5)
    assert number(1.5, "cfg", 0, 10) == 1.5
    for bad in (-1, 10.5, float("nan"), "1e308", 1e308, None, False):
        with pytest.raises(BadInput, match="^cfg"):
            number(bad, "cfg", 0, 10)


@pytest.mark.parametrize(("n", "cols", "scale"), [(1, 1, 1), (100, 10, 2), (37, 20, 3)])
def test_the_picture_size_is_what_render_draws(n, cols, scale):
    picture = grid(torch.zeros(n, 28, 28, dtype=torch.uint8), cols, scale=scale, row_labels=["0"])
    assert grid_pixels(n, cols, scale) == picture.size


def test_pictures_too_large_for_memory_or_for_a_gif_are_refused():
    check_picture(100, 10, 16)
    with pytest.raises(BadInput, match="megapixel picture"):
        check_picture(100_000, 20, 16)
    with pytest.raises(BadInput, match="too large for a GIF"):
        check_picture(50_000, 20, 1, frames=13)


def test_the_command_line_refuses_what_would_exhaust_memory_before_any_work(
    trained_state, tmp_path, cli
):
    base = ["--state-dir", trained_state, *CPU]
    out = tmp_path / "big.png"
    one_line_refusal(cli("sample", "--n", 100_000, "--scale", 16, "--grid", out, *base))
    one_line_refusal(cli("sample", "--n", 50_000, "--gif", tmp_path / "a.gif", *base))
    one_line_refusal(cli("sample", "--interpolate", 3, 8, "--n", 5000, "--scale", 16, *base))
    teacher = ["--model", "teacher", "--grid", out, *base]
    one_line_refusal(cli("sample", "--cfg", "1e308", *teacher))
    one_line_refusal(cli("sample", "--seed", 2**64, *base))
    assert list(tmp_path.iterdir()) == []
    assert cli("sample", "--cfg", MAX_GUIDANCE, "--n", 4, *teacher).code == 0


def test_a_settings_file_meets_the_same_limits_as_the_flags(trained_state, tmp_path, cli):
    settings_file = tmp_path / "run.toml"
    settings_file.write_text("[sample]\nsteps = 1000000000\n")
    res = cli("sample", "--model", "teacher", "--config", settings_file,
              "--state-dir", trained_state, "--grid", tmp_path / "g.png", *CPU)  # fmt: skip
    one_line_refusal(res)
    assert "steps" in res.err and not (tmp_path / "g.png").exists()


def test_the_api_checks_what_the_command_line_checks(trained_state):
    model = ddream.load(trained_state, device="cpu", dtype="fp32")
    assert model.dtype == "fp32"
    for kwargs, word in [
        ({"cfg": math.nan, "model": "teacher"}, "cfg"),
        ({"cfg": 1e9, "model": "teacher"}, "cfg"),
        ({"steps": 0, "model": "teacher"}, "steps"),
        ({"n": 2.5}, "n"),
        ({"n": 10**9}, "n"),
        ({"classes": [1.5]}, "classes"),
        ({"classes": ["x"]}, "classes"),
        ({"classes": []}, "classes"),
        ({"seed": -1}, "seed"),
    ]:
        with pytest.raises(BadInput, match=f"^{word}"):
            model.sample(**kwargs)
    assert model.sample(n=3.0, classes=("7",)).shape == (3, 28, 28)


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 40),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.integers(-2, 12), max_size=3),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(n=VALUES, classes=VALUES, seed=VALUES, steps=VALUES, cfg=VALUES)
def test_any_api_arguments_give_digits_or_one_bad_input(
    trained_state, n, classes, seed, steps, cfg
):
    model = _model(trained_state)
    try:
        digits = model.sample(
            n=n, classes=classes, seed=seed, steps=steps, cfg=cfg, model="teacher"
        )
    except BadInput as e:
        assert "\n" not in str(e)
        return
    assert digits.dtype == torch.uint8 and digits.shape == (int(float(n)), 28, 28)


_MODELS: dict = {}


def _model(state):
    if state not in _MODELS:
        _MODELS[state] = ddream.load(state, device="cpu", dtype="fp32")
    return _MODELS[state]
