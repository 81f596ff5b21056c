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
        refused(
            cli(*command, "--state-dir", state),
            1,
            "state.json",
            words,
            "`ddream train-dit --force`",
        )


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


# ---- every key of every stage record deleted, retyped or emptied -----------------------------------
RAW = ("KeyError", "TypeError", "AttributeError", "ValueError", "IndexError", "Traceback")


def _damaged(trained_state, folder, stage: str, key: str, how: str):
    """A copy of the state dir with one key of one record deleted, of another type, or emptied."""
    copy = folder / "state"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(trained_state, copy, ignore=shutil.ignore_patterns("plots", "*.gif"))
    data = json.loads((copy / "state.json").read_text())
    record = data["stages"][stage]
    value = record[key]
    if how == "delete":
        del record[key]
    elif how == "retype":
        record[key] = 7 if isinstance(value, str) else "x"
    else:
        record[key] = {dict: {}, str: "", list: []}.get(type(value))
    (copy / "state.json").write_text(json.dumps(data))
    return copy


def _answered(res) -> str | None:
    """The advice of a refusal (None when the command worked): one line, exit 1 or 2, no raw
    exception name, naming the state file or a command to run."""
    if res.code == 0:
        return None
    lines = [ln for ln in res.err.strip().splitlines() if not ln.startswith("note: ")]
    assert res.code in (1, 2) and len(lines) == 1, (res.code, res.err)
    assert not any(word in lines[0] for word in RAW), lines[0]
    assert "state.json" in lines[0] or "`ddream " in lines[0], lines[0]
    return lines[0]


def _cases(trained_state) -> list[tuple[str, str, str]]:
    stages = json.loads((trained_state / "state.json").read_text())["stages"]
    return [(s, k, how) for s, rec in stages.items() for k in rec
            for how in ("delete", "retype", "empty")]  # fmt: skip


def test_every_hand_edit_of_a_record_gets_one_line_from_every_reader(
    trained_state, tmp_path, cli, mnist_dir
):
    """Each key of each stage record in turn, deleted, retyped and emptied: `status`, `sample` and
    the page's loader each work or answer in one designed line (the heavier readers, reconstruct,
    eval and export, on the cases that damage a model's record: the test below)."""
    from ddream.demo import Demo
    from ddream.errors import DDreamError

    cases = _cases(trained_state)
    assert len(cases) > 100
    for stage, key, how in cases:
        state = _damaged(trained_state, tmp_path, stage, key, how)
        _answered(cli("status", "--state-dir", state))
        _answered(
            cli("sample", "--n", "2", "--npz", tmp_path / "x.npz", "--state-dir", state, *CPU)
        )
        try:
            Demo(state, torch.device("cpu")).close()
        except DDreamError as e:  # the page's line
            assert len(str(e).splitlines()) == 1 and not any(w in str(e) for w in RAW), str(e)


def _follow(cli, state, mnist_dir, advice: str) -> None:
    """Do what the line says: the `ddream ...` command it names (on the quick profile), or, when it
    says to mend the file or move it away, move it away and run the whole quick pipeline."""
    import re

    found = re.search(r"`ddream ([a-z-]+)((?: --force)?)`", advice)
    if found is None or found.group(1) == "all":
        assert found or "move the file away" in advice, advice
        (state / "state.json").rename(state / "state.json.bak")
        command = ["all"]
    else:
        command = [found.group(1), *found.group(2).split()]
    extra = ["--data-dir", mnist_dir] if command[0] in ("train-ae", "encode", "all") else []
    if command[0] != "encode":
        extra += ["--profile", "quick"]
    res = cli(*command, *extra, "--state-dir", state, "-q", *CPU)
    assert res.code == 0, (command, res.err)


@pytest.mark.parametrize(
    "stage,key,how",
    [("ae", "outputs", "empty"), ("encode", "inputs", "delete"), ("dit", "outputs", "delete"),
     ("distill", "status", "retype"), ("dit", "metrics", "retype"), ("ae", "inputs", "empty")],
)  # fmt: skip
def test_following_the_advice_repairs_the_state_dir(
    trained_state, tmp_path, cli, mnist_dir, stage, key, how
):
    """Every reader answers in one line, and doing what it says (at most four times, as each stage
    after the damaged one asks in turn) makes `ddream sample` work again."""
    state = _damaged(trained_state, tmp_path, stage, key, how)
    sample = ("sample", "--n", "2", "--npz", tmp_path / "x.npz", "--state-dir", state, *CPU)
    for reader in (
        ("reconstruct", "--test", "2", "--data-dir", mnist_dir, "--out", tmp_path / "r.png"),
        ("eval", "--n", "20", "--data-dir", mnist_dir),
        ("export", tmp_path / "out", "--data-dir", mnist_dir),
    ):
        _answered(cli(*reader, "--state-dir", state, *CPU))
    for _ in range(4):
        advice = _answered(cli(*sample))
        if advice is None:
            break
        _follow(cli, state, mnist_dir, advice)
    assert _answered(cli(*sample)) is None
