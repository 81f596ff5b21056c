"""Quality metrics, and `ddream eval` telling an untrained model from real digits."""

import json

import pytest
import torch
from conftest import synthetic_digits

from ddream.data import Split
from ddream.metrics import frechet_distance, precision_recall, psnr, ssim
from ddream.stages.evaluate import features, score_generation, train_classifier


def test_ssim_and_psnr_are_perfect_for_identical_images_and_drop_with_noise():
    a = torch.rand(4, 28, 28)
    assert torch.allclose(ssim(a, a), torch.ones(4), atol=1e-5)
    noisy = (a + 0.3 * torch.randn_like(a)).clamp(0, 1)
    assert float(ssim(a, noisy).max()) < 0.9 and float(psnr(a, noisy).max()) < 20


def test_fid_is_zero_for_one_set_and_grows_with_the_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 8, generator=g)
    y = torch.randn(2000, 8, generator=g)
    assert abs(frechet_distance(x, x)) < 1e-6
    near, far = frechet_distance(x, y), frechet_distance(x, y + 2.0)
    assert near < 0.1 and far == pytest.approx(near + 4 * 8, rel=0.05)


def test_precision_and_recall_separate_quality_from_coverage():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(1000, 2, generator=g)
    one_mode = (
        torch.randn(1000, 2, generator=g) * 0.1
    )  # inside the real set, but covering little of it
    p, r = precision_recall(real, one_mode)
    assert p > 0.9 and r < 0.3
    p, r = precision_recall(real, torch.randn(1000, 2, generator=g))
    assert p > 0.7 and r > 0.7


@pytest.fixture(scope="module")
def classifier():
    imgs, labels = synthetic_digits(600, 0)
    train = Split(torch.from_numpy(imgs), torch.from_numpy(labels.astype("int64")))
    imgs, labels = synthetic_digits(200, 1)
    test = Split(torch.from_numpy(imgs), torch.from_numpy(labels.astype("int64")))
    model, acc = train_classifier(train, test, torch.device("cpu"), epochs=3, batch=32)
    return model, acc, test


def test_an_untrained_model_scores_far_worse_than_real_digits(classifier):
    model, acc, test = classifier
    assert acc > 0.95
    real_feats, _ = features(model, test.images.float() / 255, torch.device("cpu"))
    imgs, labels = synthetic_digits(200, 2)  # held-out real digits: the floor
    floor = score_generation(
        model,
        torch.from_numpy(imgs).float() / 255,
        torch.from_numpy(labels.astype("int64")),
        real_feats,
        torch.device("cpu"),
    )
    noise = torch.rand(
        200, 28, 28, generator=torch.Generator().manual_seed(0)
    )  # an untrained generator
    bad = score_generation(model, noise, torch.arange(200) % 10, real_feats, torch.device("cpu"))
    assert floor.class_accuracy > 0.95 and floor.recall > 0.5
    assert bad.fid > 10 * max(floor.fid, 1e-3)
    assert bad.class_accuracy < 0.5 and bad.precision < floor.precision


def test_eval_command_reports_json_with_the_floor(trained_state, mnist_dir, tmp_path, cli):
    import shutil

    state = tmp_path / "state"
    shutil.copytree(trained_state, state)
    res = cli(
        "eval",
        "--state-dir",
        state,
        "--data-dir",
        mnist_dir,
        "--n",
        "60",
        "--model",
        "teacher",
        "--steps",
        "3",
        "--json",
        "--device",
        "cpu",
    )
    assert res.code == 0, res.err
    report = json.loads(res.out)
    assert set(report["generation"]) == {"fid", "class_accuracy", "precision", "recall"}
    assert report["real_floor"]["fid"] < report["generation"]["fid"]
    assert 0 <= report["reconstruction"]["ssim"] <= 1 and report["extractor_test_accuracy"] > 0.9
    assert (state / "eval" / "classifier.safetensors").exists()  # cached for next time
    table = cli(
        "eval",
        "--state-dir",
        state,
        "--data-dir",
        mnist_dir,
        "--n",
        "60",
        "--model",
        "teacher",
        "--steps",
        "3",
        "--device",
        "cpu",
        "--dtype",
        "bf16",
    )
    assert table.code == 0 and "real-data floor" in table.out and "training the" not in table.out
    # fp32 first (the decoder as trained), then the decoder as this sampling ran it
    assert report["sampling_decoder"] == "autoencoder decoder, fp32"
    assert list(report["decoders"]) == ["autoencoder decoder, fp32"]
    bf16 = json.loads((state / "eval" / "report.json").read_text())
    assert list(bf16["decoders"]) == ["autoencoder decoder, fp32", "autoencoder decoder, bf16"]
    assert (
        abs(bf16["decoders"]["autoencoder decoder, bf16"]["psnr"] - bf16["reconstruction"]["psnr"])
        < 1
    )
    assert "autoencoder decoder, bf16" in table.out
