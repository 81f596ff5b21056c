"""Editing a digit: `ddream edit` (another class in its own hand) and `ddream complete` (the rest of a
digit from the pixels kept), through the CLI, the Python API and the functions both call, on the tiny
quick-profile models; each bad input one line and exit 2, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import ddream
from ddream.completer import Completer, paste
from ddream.editor import Editor, edit_steps
from ddream.errors import BadInput
from ddream.masks import box_mask, keep_mask, named_mask, read_mask
from ddream.render import grid
from ddream.state import StateDir
from ddream.userimage import framing, read_gray, read_user_array

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def editor(trained_state):
    return Editor.from_state(StateDir(trained_state), CPU)


@pytest.fixture(scope="module")
def completer(trained_state):
    return Completer.from_state(StateDir(trained_state), CPU)


@pytest.fixture(scope="module")
def digits(trained_state):
    return ddream.load(trained_state, device="cpu").sample(classes=[1, 7], n=4, seed=3)


def a_seven(path, size=(90, 120)):
    """A dark-on-light 7 in a larger canvas, as a person would draw it."""
    im = Image.new("L", size, 255)
    ImageDraw.Draw(im).line([(15, 20), (75, 20), (35, 105)], fill=0, width=9)
    im.save(path)
    return path


# ---- the class change -----------------------------------------------------------------------------
def test_an_edit_to_the_class_read_or_at_strength_0_is_the_reconstruction(editor, digits):
    src = digits.float() / 255
    z0 = editor.latents(src)
    recon = editor.teacher.decode(z0)
    read = editor.read_class(z0)
    same = editor.change_class(src, read, strength=0.8, seed=1)
    assert torch.equal(same.sources, read) and same.steps == edit_steps(0.8) == 10
    assert (same.images.int() - recon.int()).abs().max() <= 1  # the two velocities cancel
    other = (read + 1) % 10
    still = editor.change_class(src, other, strength=0.0)
    assert still.steps == 0 and torch.equal(still.images, recon)


def test_strength_moves_the_digit_and_the_seed_fixes_the_result(editor, digits):
    src = digits.float() / 255
    to = torch.tensor([4])
    light = editor.change_class(src, to, strength=0.3, seed=0).images.float()
    strong = editor.change_class(src, to, strength=1.0, seed=0).images.float()
    recon = editor.teacher.decode(editor.latents(src)).float()
    assert (light - recon).abs().mean() < (strong - recon).abs().mean()
    again = editor.change_class(src, to, strength=1.0, seed=0).images
    assert torch.equal(again, strong.to(torch.uint8))


def test_edit_cli_api_and_npz_agree(trained_state, tmp_path, cli):
    src = a_seven(tmp_path / "seven.png")
    res = cli(
        "edit", src, "--to", "2", "--strength", "0.7", "--seed", "5", "--npz", tmp_path / "e.npz",
        "--json", "--state-dir", trained_state, "--device", "cpu",
    )  # fmt: skip
    assert res.code == 0, res.err
    report = json.loads(res.out)
    assert report["steps"] == 9 and report["to"] == 2 and len(report["edits"]) == 1
    assert (tmp_path / "seven.edit.png").exists()
    saved = np.load(tmp_path / "e.npz")
    assert saved["labels"].tolist() == [2]
    model = ddream.load(trained_state, device="cpu")
    api = model.edit([src], to=2, strength=0.7, seed=5)
    assert api.dtype == torch.uint8 and np.array_equal(api.numpy(), saved["images"])
    framed = (framing(read_gray(src))[0] * 255).round().to(torch.uint8)[None]
    assert torch.equal(model.edit(framed, to=2, strength=0.7, seed=5), api)  # framed digits as is
    picture = np.asarray(Image.open(tmp_path / "seven.edit.png"))
    assert picture.shape[1] > picture.shape[0]  # the source beside its edit


def test_edit_of_test_digits_writes_one_picture(trained_state, mnist_dir, tmp_path, cli):
    res = cli(
        "edit", "--test", "12", "--to", "3", "--npz", tmp_path / "t.npz", "--data-dir", mnist_dir,
        "--state-dir", trained_state, "--device", "cpu",
    )  # fmt: skip
    assert res.code == 0, res.err
    assert (
        "-> 3 at strength 0.8 (10 teacher steps)" in res.out and (tmp_path / "edits.png").exists()
    )
    saved = np.load(tmp_path / "t.npz")
    assert saved["images"].shape == (12, 28, 28) and set(saved["labels"].tolist()) == {3}


@pytest.mark.parametrize(
    "args, match",
    [
        (["--to", "10"], "--to"),
        (["--to", "3", "--strength", "1.5"], "--strength"),
        (["--to", "3", "--strength", "nan"], "--strength"),
        (["--to", "3", "--npz", "out.txt"], ".npz"),
        (["--to", "3", "--test", "3"], "not both"),
    ],
)
def test_edit_refuses_bad_input_in_one_line_writing_nothing(
    trained_state, tmp_path, cli, args, match
):
    src = a_seven(tmp_path / "seven.png")
    before = sorted(p.name for p in tmp_path.iterdir())
    res = cli("edit", src, *args, "--state-dir", trained_state, "--device", "cpu")
    assert res.code == 2 and match in res.err and len(res.err.strip().splitlines()) == 1
    assert "Traceback" not in res.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_edit_without_images_and_api_refusals(trained_state, cli, digits):
    res = cli("edit", "--to", "3", "--state-dir", trained_state, "--device", "cpu")
    assert res.code == 2 and "give image files, or --test N" in res.err
    model = ddream.load(trained_state, device="cpu")
    with pytest.raises(BadInput, match="^to 12"):
        model.edit(digits, to=12)
    with pytest.raises(BadInput, match="one for each of the 4"):
        model.edit(digits, to=[1, 2])
    with pytest.raises(BadInput, match="^strength"):
        model.edit(digits, to=1, strength=-0.1)
    with pytest.raises(BadInput, match="shape"):
        model.edit(torch.zeros(2, 32, 32, dtype=torch.uint8), to=1)


# ---- completion -------------------------------------------------------------------------------------
def test_completions_keep_the_kept_pixels_differ_elsewhere_and_repeat_by_seed(completer, digits):
    src = digits.float() / 255
    keep = named_mask("top")
    done = completer.complete(src, keep, n=5, seed=2)
    assert done.images.shape == (4, 5, 28, 28) and done.labels.shape == (4, 5)
    exact = (src * 255).round().to(torch.uint8)[:, None].expand_as(done.images)
    assert torch.equal(done.images[..., :14, :], exact[..., :14, :])
    hidden = done.images[..., 14:, :].flatten(2).float()
    for row in hidden:  # the K completions of a digit all differ in the hidden part
        assert (torch.cdist(row, row) + torch.eye(5) > 0).all()
    assert torch.allclose(done.posterior.sum(1), torch.ones(4)) and (done.posterior >= 0).all()
    assert torch.all(done.errors[:, 2:] >= done.errors[:, 1:-1])  # then by fit
    assert torch.equal(done.labels[:, 0], done.posterior.argmax(1))  # the likeliest class first
    assert torch.equal(completer.complete(src, keep, n=5, seed=2).images, done.images)
    as_three = completer.complete(src, keep, n=3, seed=2, cls=3)
    assert as_three.posterior is None and set(as_three.labels.flatten().tolist()) == {3}


def test_a_digit_s_edit_and_completions_do_not_depend_on_the_digits_beside_it(
    editor, completer, digits, monkeypatch
):
    src = digits.float() / 255
    to = torch.tensor([2, 5, 2, 5])
    together = editor.change_class(src, to, seed=6).images
    assert torch.equal(editor.change_class(src[2:3], to[2:3], seed=6).images[0], together[2])
    from ddream import completer as module

    monkeypatch.setattr(module, "DIGITS_PER_CALL", 3)  # two calls: 3 digits, then 1
    done = completer.complete(src, named_mask("right"), n=2, seed=6)
    alone = completer.complete(src[3:], named_mask("right"), n=2, seed=6)
    assert torch.equal(alone.images[0], done.images[3])
    assert torch.allclose(alone.posterior[0], done.posterior[3])


def test_the_search_fits_the_kept_pixels_better_than_its_first_draws(completer, digits):
    src = digits.float() / 255
    keep = named_mask("left").expand(4, -1, -1)
    _, _, err = completer.search(src, keep, seed=0, cls=None, n=8)
    from ddream import completer as module

    rounds = module.ROUNDS
    try:
        module.ROUNDS = ()
        _, _, first = completer.search(src, keep, seed=0, cls=None, n=8)
    finally:
        module.ROUNDS = rounds
    assert (err <= first).all() and (err.min(1).values < first.min(1).values).any()


def test_the_seam_carries_the_mismatch_into_the_completion_and_fades():
    src = torch.full((1, 28, 28), 0.5)
    drawn = torch.full((1, 1, 28, 28), 0.8)
    out = paste(src, named_mask("top")[None], drawn)[0, 0].float() / 255
    assert torch.all(out[:14] == round(0.5 * 255) / 255)
    assert (
        abs(float(out[14, 10]) - 0.5) < abs(0.8 - 0.5) / 2
    )  # the first hidden row: near the source
    assert abs(float(out[27, 10]) - 0.8) < 0.01  # far from the seam: the drawing


def test_masks_by_name_box_and_image(tmp_path):
    assert named_mask("bottom")[14:].all() and not named_mask("bottom")[:14].any()
    assert named_mask("right")[:, 14:].all() and not named_mask("right")[:, :14].any()
    box = box_mask((7, 2, 21, 9))
    assert box.sum() == 14 * 7 and box[2, 7] and not box[9, 7]
    assert torch.equal(keep_mask("box 7 2 21 9"), box)
    src = a_seven(tmp_path / "seven.png")
    gray = read_gray(src)
    digit, frame = framing(gray)
    ink = Image.fromarray(((gray < 0.5) * 255).astype(np.uint8))
    ink.save(tmp_path / "ink.png")
    mask = read_mask(tmp_path / "ink.png", frame)  # the ink, as a mask: where the framed digit is
    inside = digit > 0.5
    assert (mask & inside).sum() / (mask | inside).sum() > 0.6
    for bad, match in [
        (np.zeros((120, 90)), "keeps no pixel"),
        (np.full((120, 90), 255), "keeps every pixel"),
        (np.full((50, 50), 255), "the size of the image"),
    ]:
        Image.fromarray(bad.astype(np.uint8)).save(tmp_path / "bad.png")
        with pytest.raises(BadInput, match=match):
            read_mask(tmp_path / "bad.png", frame)
    with pytest.raises(BadInput, match="X1 must exceed X0"):
        box_mask((9, 0, 9, 5))


def test_complete_cli_api_and_npz_agree(trained_state, tmp_path, cli):
    src = a_seven(tmp_path / "seven.png")
    res = cli(
        "complete", src, "--keep", "top", "--n", "3", "--seed", "4", "--npz", tmp_path / "c.npz",
        "--json", "--state-dir", trained_state, "--device", "cpu",
    )  # fmt: skip
    assert res.code == 0, res.err
    report = json.loads(res.out)["completions"][0]
    assert len(report["posterior"]) == 10 and abs(sum(report["posterior"]) - 1) < 1e-3
    saved = np.load(tmp_path / "c.npz")
    assert saved["images"].shape == (3, 28, 28) and saved["labels"].tolist() == report["classes"]
    model = ddream.load(trained_state, device="cpu")
    api = model.complete([src], keep="top", n=3, seed=4)
    assert np.array_equal(api.images[0].numpy(), saved["images"])
    assert np.allclose(api.posterior[0].numpy(), report["posterior"], atol=1e-4)
    picture = np.asarray(Image.open(tmp_path / "seven.complete.png"))
    assert picture.shape[1] > 4 * picture.shape[0]  # source, kept, 3 completions in a row
    line = cli("complete", src, "--box", "0", "0", "28", "10", "--class", "7", "--n", "2",
               "--state-dir", trained_state, "--device", "cpu", "--out", tmp_path / "b.png")  # fmt: skip
    assert line.code == 0 and "as a 7" in line.out and (tmp_path / "b.png").exists()


def test_complete_takes_a_mask_drawn_over_the_image(trained_state, tmp_path, cli):
    src = a_seven(tmp_path / "seven.png")
    mask = Image.new("L", (90, 120), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 90, 50), fill=255)
    mask.save(tmp_path / "mask.png")
    res = cli("complete", src, "--mask", tmp_path / "mask.png", "--n", "2", "--state-dir",
              trained_state, "--device", "cpu")  # fmt: skip
    assert res.code == 0, res.err
    assert "seven.png:" in res.out and (tmp_path / "seven.complete.png").exists()


@pytest.mark.parametrize(
    "args, match",
    [
        ([], "say what to keep"),
        (["--keep", "top", "--box", "0", "0", "5", "5"], "say what to keep"),
        (["--keep", "middle"], "--keep 'middle'"),
        (["--box", "0", "0", "28", "28"], "keeps every pixel"),
        (["--box", "5", "5", "5", "9"], "X1 must exceed X0"),
        (["--mask", "empty.png"], "keeps no pixel"),
        (["--mask", "full.png"], "keeps every pixel"),
        (["--mask", "small.png"], "the size of the image"),
        (["--keep", "top", "--class", "12"], "--class"),
        (["--keep", "top", "--n", "0"], "--n"),
    ],
)
def test_complete_refuses_bad_input_in_one_line_writing_nothing(
    trained_state, tmp_path, cli, args, match
):
    src = a_seven(tmp_path / "seven.png")
    Image.new("L", (90, 120), 0).save(tmp_path / "empty.png")
    Image.new("L", (90, 120), 255).save(tmp_path / "full.png")
    Image.new("L", (28, 28), 255).save(tmp_path / "small.png")
    before = sorted(p.name for p in tmp_path.iterdir())
    res = cli("complete", src, *args, "--state-dir", trained_state, "--device", "cpu")
    assert res.code == 2 and match in res.err and len(res.err.strip().splitlines()) == 1, res.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_complete_api_refusals(trained_state, digits):
    model = ddream.load(trained_state, device="cpu")
    with pytest.raises(BadInput, match="keeps no pixel"):
        model.complete(digits, keep=torch.zeros(28, 28, dtype=torch.bool))
    with pytest.raises(BadInput, match=r"\(20, 20\)"):
        model.complete(digits, keep=torch.ones(20, 20, dtype=torch.bool))
    with pytest.raises(BadInput, match="one for each of the 4"):
        model.complete(digits, keep=torch.ones(3, 28, 28, dtype=torch.bool))
    with pytest.raises(BadInput, match="^cls 10"):
        model.complete(digits, keep="top", cls=10)
    masks = torch.zeros(4, 28, 28, dtype=torch.bool)
    masks[:, :10] = True
    assert model.complete(digits, keep=masks, n=2).images.shape == (4, 2, 28, 28)


# ---- the page's Edit tab ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tab(trained_state):
    from ddream.demo import Demo
    from ddream.demo_edit import EditTab

    demo = Demo(trained_state, CPU)
    yield EditTab(demo)
    demo.close()


def drawing() -> np.ndarray:
    """What the pad sends: RGBA, a black stroke on white."""
    im = Image.new("RGBA", (280, 280), (255, 255, 255, 255))
    ImageDraw.Draw(im).line([(70, 60), (210, 60), (110, 240)], fill=(0, 0, 0, 255), width=20)
    return np.asarray(im)


def test_the_edit_tab_gives_the_api_s_pixels(tab, trained_state):
    model = ddream.load(trained_state, device="cpu")
    picture, caption = tab.edit({"composite": drawing()}, None, "5", 0.6, 3)
    api = model.edit([drawing()], to=5, strength=0.6, seed=3)[0]
    assert "redrawn as a 5 at strength 0.6 (8 teacher steps)" in caption
    framed = (read_user_array(drawing()) * 255).round().to(torch.uint8)
    assert np.array_equal(picture, grid(torch.stack([framed, api]), 2, scale=6))  # yours, the edit
    shown, text = tab.complete({"composite": drawing()}, None, "left", None, 3, 1)
    done = model.complete([drawing()], keep="left", n=3, seed=1)
    best = int(done.posterior[0].argmax())
    assert f"given what was kept: {best} {100 * float(done.posterior[0, best]):.0f}%" in text
    assert shown.shape[1] > 4 * shown.shape[0]  # yours, kept, 3 completions in a row


def test_the_edit_tab_completes_the_brushed_part_and_refuses_bad_controls(tab):
    brush = Image.new("RGBA", (280, 280), (255, 255, 255, 255))
    ImageDraw.Draw(brush).rectangle((0, 0, 280, 140), fill=(0, 0, 0, 255))
    _, text = tab.complete({"composite": drawing()}, None, "brushed", np.asarray(brush), 2, 0)
    assert text.startswith("given what was kept:")
    blank = np.full((280, 280, 4), 255, dtype=np.uint8)
    for args, match in [
        ((None, None, "3", 0.8), "draw a digit"),
        (({"composite": drawing()}, None, "12", 0.8), "the class to turn it into"),
        (({"composite": drawing()}, None, "3", 1.5), "strength"),
    ]:
        with pytest.raises(BadInput, match=match):
            tab.edit(*args)
    for args, match in [
        (("middle", None, 8), "keep 'middle'"),
        (("brushed", None, 8), "brush the part to keep"),
        (("brushed", blank, 8), "keeps no pixel"),
        (("top", None, 0), "completions"),
    ]:
        with pytest.raises(BadInput, match=match):
            tab.complete({"composite": drawing()}, None, *args)
