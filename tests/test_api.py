"""The Python API: the same digits and reconstructions as the CLI, from the same functions."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import ddream
from ddream.errors import BadInput, NotBuilt


def test_sample_gives_the_cli_s_digits(trained_state, tmp_path, cli):
    model = ddream.load(trained_state, device="cpu")
    digits = model.sample(classes=[3, 8], n=6, seed=1)
    res = cli(
        "sample", "-c", "3", "-c", "8", "--n", "6", "--seed", "1", "--npz", tmp_path / "d.npz",
        "--state-dir", trained_state, "--device", "cpu",
    )  # fmt: skip
    assert res.code == 0
    saved = np.load(tmp_path / "d.npz")
    assert digits.dtype == torch.uint8 and np.array_equal(digits.numpy(), saved["images"])
    assert saved["labels"].tolist() == [3, 3, 3, 8, 8, 8]
    assert torch.equal(model.sample(classes=[3, 8], n=6, seed=1), digits)  # deterministic
    teacher = model.sample(classes=[3], n=2, model="teacher", steps=3)
    assert teacher.shape == (2, 28, 28)
    assert [im.size for im in ddream.to_pil(digits[:2])] == [(28, 28), (28, 28)]


def test_reconstruct_gives_the_cli_s_psnr(trained_state, tmp_path, cli):
    im = Image.new("L", (60, 60), 255)
    ImageDraw.Draw(im).line([(30, 8), (32, 52)], fill=0, width=6)
    im.save(tmp_path / "one.png")
    model = ddream.load(trained_state, device="cpu")
    recon, psnr = model.reconstruct([tmp_path / "one.png", np.asarray(im)])
    assert recon.shape == (2, 28, 28) and torch.allclose(psnr[0], psnr[1])
    out = cli("reconstruct", tmp_path / "one.png", "--state-dir", trained_state, "--device", "cpu")
    assert f"PSNR {float(psnr[0]):.2f} dB" in out.out
    same, again = model.reconstruct(recon[:1])  # tensors in [0, 1] go straight in
    assert same.shape == (1, 28, 28) and float(again[0]) > 0


def test_bad_requests_and_missing_stages_are_one_line_errors(trained_state, tmp_path):
    model = ddream.load(trained_state, device="cpu")
    with pytest.raises(BadInput, match="classes 12: give a whole number from 0 to 9"):
        model.sample(classes=[12])
    with pytest.raises(BadInput, match="train or test"):
        model.latents("validation")
    assert model.latents("train").latents.ndim == 4
    with pytest.raises(NotBuilt, match="no finished"):
        ddream.load(tmp_path / "empty", device="cpu").sample(n=1)


@pytest.mark.slow
def test_importing_ddream_imports_no_torch():
    code = "import sys, ddream; print('torch' in sys.modules, callable(ddream.load))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "module",
    ["ddream.api", "ddream.demo", "ddream.sampler", "ddream.stages.sample", "ddream.stages.reconstruct",
     "ddream.stages.evaluate", "ddream.stages.encode", "ddream.stages.export",
     "ddream.stages.onnx_export"],
)  # fmt: skip
def test_inference_never_imports_the_training_loop(module):
    code = f"import sys, {module}; print('ddream.train' in sys.modules, 'typer' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
