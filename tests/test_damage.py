"""Odd files and hand edits get a designed line naming the file and what to do: never a raw Python
exception, never work done before the refusal."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

CPU = ["--device", "cpu"]


def refused(res, code: int, *words: str) -> None:
    assert res.code == code, (res.code, res.err)
    assert len(res.err.strip().splitlines()) == 1 and "Error:" not in res.err, res.err
    for word in words:
        assert word in res.err, res.err


@pytest.fixture
def state(trained_state, tmp_path):
    copy = tmp_path / "state"
    shutil.copytree(trained_state, copy)
    return copy


def test_images_in_formats_ddream_does_not_read_are_refused_unopened(trained_state, tmp_path, cli):
    pixels = np.ones((40, 40), np.float32)
    pixels[3, 3] = np.nan
    Image.fromarray(pixels, mode="F").save(tmp_path / "nan.tiff")
    Image.fromarray(pixels, mode="F").save(tmp_path / "tiff_inside.png", format="TIFF")
    (tmp_path / "eps.png").write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\nshowpage\n")
    for name in ("nan.tiff", "tiff_inside.png", "eps.png"):
        res = cli("reconstruct", tmp_path / name, "--state-dir", trained_state, *CPU)
        refused(res, 2, name, "not an image ddream can read (PNG, JPEG, BMP, GIF)")


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("epoch", "three", "the dit record has epoch = 'three', not a whole number"),
        ("outputs", {"model": "dit/model.safetensors"}, "damaged outputs entry 'model'"),
        ("inputs", [1, 2], "the dit record has inputs = [1, 2], not a table"),
        ("status", None, "the dit record has status = None"),
    ],
)
def test_a_hand_edited_record_of_the_wrong_type_is_named(state, cli, field, value, words):
    data = json.loads((state / "state.json").read_text())
    data["stages"]["dit"][field] = value
    (state / "state.json").write_text(json.dumps(data))
    for command in (["status"], ["sample", "--n", 4, *CPU]):
        refused(cli(*command, "--state-dir", state), 1, "state.json", words, "start afresh")


def test_a_state_file_whose_format_is_not_a_number_is_named(state, cli):
    data = json.loads((state / "state.json").read_text())
    data["format"] = "one"
    (state / "state.json").write_text(json.dumps(data))
    refused(cli("status", "--state-dir", state), 1, "'format' is 'one'")


def test_float_widths_in_a_settings_file_are_refused_before_a_state_dir_is_made(tmp_path, cli):
    (tmp_path / "run.toml").write_text("[ae]\nwidths = [8.0, 16, 32, 64, 64]\n")
    res = cli("train-ae", "--config", tmp_path / "run.toml", "--state-dir", tmp_path / "new",
              "--profile", "quick", *CPU)  # fmt: skip
    refused(res, 2, "[ae] widths", "a list of whole numbers")
    assert not (tmp_path / "new").exists()


def test_eval_finds_an_unwritable_state_dir_before_training_its_classifier(
    state, mnist_dir, cli, monkeypatch
):
    def never(*args, **kwargs):
        raise AssertionError("trained the classifier before finding it could not keep it")

    monkeypatch.setattr("ddream.stages.evaluate.train_classifier", never)
    (state / "eval").write_text("a file where the eval folder goes")
    res = cli("eval", "--n", 20, "--data-dir", mnist_dir, "--state-dir", state, *CPU)
    refused(res, 2, "cannot write into", "eval")


def test_a_damaged_eval_report_is_named_and_the_page_still_starts(state, tmp_path, cli):
    from ddream.demo import Demo

    (state / "eval").mkdir()
    for damaged in ("{not json", json.dumps({"generation": {"fid": "low"}}), "[1, 2]"):
        (state / "eval" / "report.json").write_text(damaged)
        demo = Demo(state, torch.device("cpu"))
        try:
            assert "report.json is damaged; run `ddream eval` again" in demo.model_card()
        finally:
            demo.close()
        res = cli("export", tmp_path / "out", "--state-dir", state, *CPU)
        refused(res, 1, "report.json is damaged")
        assert not (tmp_path / "out").exists()
