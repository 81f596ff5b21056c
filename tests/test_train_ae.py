"""train-ae: it learns, it records, and a run stopped and resumed ends where an unbroken one does."""

import contextlib
import dataclasses

import pytest
import torch
from conftest import stop_after

from ddream.checkpoint import load_tensors
from ddream.data import load_split
from ddream.errors import DDreamError, Interrupted
from ddream.models.autoencoder import AutoEncoder
from ddream.presets import get_profile
from ddream.stages.train_ae import evaluate_psnr, train_ae
from ddream.state import StateDir

QUICK = get_profile("quick")
CPU = torch.device("cpu")


def _train(state_dir, mnist_dir, steps=None, **overrides):
    """train-ae on the quick profile; with `steps`, stopped cleanly after that many steps."""
    cfg = dataclasses.replace(QUICK.ae_train, **overrides)
    with stop_after(steps) if steps else contextlib.nullcontext():
        return train_ae(
            StateDir(state_dir),
            QUICK.ae,
            cfg,
            data_dir=mnist_dir,
            device=CPU,
            seed=3,
            quiet=True,
        )


def test_a_short_run_lowers_the_loss_and_records_psnr_each_epoch(tmp_path, mnist_dir):
    torch.manual_seed(3)  # the same initial weights train_ae starts from
    untrained = evaluate_psnr(AutoEncoder(QUICK.ae), load_split(mnist_dir, "test"), CPU)
    result = _train(tmp_path, mnist_dir, epochs=3, finetune_epochs=1, batch_size=32)
    rec = StateDir(tmp_path).record("ae")
    assert rec["status"] == "done" and [h["epoch"] for h in rec["history"]] == [1, 2, 3, 4]
    psnrs = [h["test_psnr"] for h in rec["history"]]
    assert psnrs[-1] > untrained + 5.0
    assert psnrs[-1] >= psnrs[0]
    assert result["metrics"]["test_psnr"] == psnrs[-1]
    tensors, meta = load_tensors(
        tmp_path / "ae" / "model.safetensors", rec["outputs"]["model"]["sha256"]
    )
    assert (
        meta["kind"] == "ddream-ae"
        and meta["config"]["latent_channels"] == QUICK.ae.latent_channels
    )
    assert not (tmp_path / "ae" / "resume.safetensors").exists()


def test_rerun_of_a_done_stage_is_skipped(tmp_path, mnist_dir):
    _train(tmp_path, mnist_dir)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file() and p.name != "state.lock")
    before = [(p, p.stat().st_mtime_ns, p.read_bytes()) for p in files]
    assert _train(tmp_path, mnist_dir)["skipped"] is True
    assert [(p, p.stat().st_mtime_ns, p.read_bytes()) for p in files] == before
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file() and p.name != "state.lock") == files


@pytest.mark.parametrize("steps", [3, 4, 9])  # mid-epoch, at an epoch's end, in the fine-tune
def test_interrupted_and_resumed_training_equals_uninterrupted(tmp_path, mnist_dir, steps):
    # 256 images / batch 32 = 8 steps an epoch; gan_start=2 puts the discriminator in play too.
    opts = dict(epochs=1, finetune_epochs=1, batch_size=32, gan_start=2, checkpoint_every=100)
    _train(tmp_path / "whole", mnist_dir, **opts)
    with pytest.raises(Interrupted):
        _train(tmp_path / "broken", mnist_dir, steps=steps, **opts)
    assert StateDir(tmp_path / "broken").view("ae").status == "partial"
    resumed = _train(tmp_path / "broken", mnist_dir, **opts)
    assert resumed["skipped"] is False
    a, _ = load_tensors(tmp_path / "whole" / "ae" / "model.safetensors")
    b, _ = load_tensors(tmp_path / "broken" / "ae" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_checkpoint_of_other_settings_is_refused(tmp_path, mnist_dir):
    with pytest.raises(Interrupted):
        _train(tmp_path, mnist_dir, steps=2, batch_size=32)
    with pytest.raises(DDreamError, match="other settings"):
        _train(tmp_path, mnist_dir, batch_size=16)


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(
    tmp_path, mnist_dir, monkeypatch
):
    opts = dict(batch_size=32, checkpoint_every=2)
    with pytest.raises(Interrupted):  # a healthy start, checkpointed
        _train(tmp_path, mnist_dir, steps=2, **opts)
    resume = tmp_path / "ae" / "resume.safetensors"
    good = resume.read_bytes()
    import ddream.stages.train_ae as train_ae_module

    real = train_ae_module.AETask.step

    def poisoned(self, epoch, global_step, idx):
        out = real(self, epoch, global_step, idx)
        with torch.no_grad():  # the weights blow up, as a too-high learning rate would make them
            next(self.ae.parameters()).fill_(float("nan"))
        return {"loss": out["loss"] * float("nan")}

    monkeypatch.setattr(train_ae_module.AETask, "step", poisoned)
    with pytest.raises(DDreamError, match="lower --lr"):
        _train(tmp_path, mnist_dir, **opts)
    assert resume.read_bytes() == good  # the non-finite weights were never written
    tensors, _ = load_tensors(resume)
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
    assert StateDir(tmp_path).view("ae").status == "partial"


def test_the_generator_pass_skips_the_discriminator_s_weight_gradients_exactly():
    """The GAN term's pass freezes the discriminator: the same autoencoder gradient as through a
    live one, no gradient left on the discriminator, and its weights trainable again afterwards."""
    import torch.nn.functional as F

    from ddream.models.discriminator import PatchDiscriminator
    from ddream.stages.train_ae import ae_losses

    torch.manual_seed(0)
    ae, disc = AutoEncoder(QUICK.ae), PatchDiscriminator(8)
    x = torch.rand(4, 1, 32, 32) * 2 - 1

    total, *_ = ae_losses(ae, disc, x, gan_weight=0.5, use_gan=True)
    total.backward()
    frozen_grads = [p.grad.clone() for p in ae.parameters()]
    assert all(p.grad is None and p.requires_grad for p in disc.parameters())

    ae.zero_grad(set_to_none=True)
    recon = ae(x)  # the same loss through a live discriminator
    live = F.l1_loss(recon, x) + F.mse_loss(recon, x) + 0.5 * -disc(recon).float().mean()
    live.backward()
    assert all(torch.equal(a, p.grad) for a, p in zip(frozen_grads, ae.parameters(), strict=True))
    assert all(p.grad is not None for p in disc.parameters())


def test_epochs_but_the_last_score_a_fixed_test_subset_the_last_scores_all(mnist_dir, monkeypatch):
    import ddream.stages.train_ae as stage
    from ddream.models.discriminator import PatchDiscriminator

    monkeypatch.setattr(stage, "EPOCH_TEST", 16)
    train, test = load_split(mnist_dir, "train"), load_split(mnist_dir, "test")
    torch.manual_seed(0)
    ae = AutoEncoder(QUICK.ae)
    task = stage.AETask(ae, PatchDiscriminator(8), QUICK.ae_train, train, test, CPU, 0)
    task._epoch = 0
    assert task.evaluate()["test_psnr"] == round(evaluate_psnr(ae, test.head(16), CPU), 3)
    task._epoch = task.total_epochs - 1
    assert task.evaluate()["test_psnr"] == round(evaluate_psnr(ae, test, CPU), 3)
    assert evaluate_psnr(ae, test.head(16), CPU) != evaluate_psnr(ae, test, CPU)


def test_a_bf16_run_resumed_ends_with_the_weights_of_an_unbroken_one(
    tmp_path, mnist_dir, monkeypatch
):
    opts = dict(epochs=1, finetune_epochs=1, batch_size=32, gan_start=2, checkpoint_every=100)
    _train(tmp_path / "fp32", mnist_dir, **opts)
    monkeypatch.delenv("DDREAM_FP32", raising=False)
    monkeypatch.setattr("ddream.runtime.cpu_has_bf16", lambda: True)
    _train(tmp_path / "whole", mnist_dir, **opts)
    with pytest.raises(Interrupted):
        _train(tmp_path / "broken", mnist_dir, steps=5, **opts)
    _train(tmp_path / "broken", mnist_dir, **opts)
    fp32, _ = load_tensors(tmp_path / "fp32" / "ae" / "model.safetensors")
    a, _ = load_tensors(tmp_path / "whole" / "ae" / "model.safetensors")
    b, _ = load_tensors(tmp_path / "broken" / "ae" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(v.dtype == torch.float32 for v in a.values())  # the weights themselves stay fp32
    assert any(not torch.equal(a[k], fp32[k]) for k in a)  # the steps did compute in bf16
    # and it learned as fp32 did: the test PSNR within a fraction of a dB
    psnr = {
        s: StateDir(tmp_path / s).record("ae")["metrics"]["test_psnr"] for s in ("fp32", "whole")
    }
    assert abs(psnr["whole"] - psnr["fp32"]) < 0.5, psnr


def test_the_gpu_rule_scales_the_autoencoder_s_batch_and_learning_rate_and_still_learns(
    tmp_path, mnist_dir
):
    from ddream.presets import GPU_BATCH, get_profile, on_gpu

    ref, gpu = get_profile("reference"), on_gpu(get_profile("reference"))
    k = GPU_BATCH
    assert gpu.ae_train.batch_size == ref.ae_train.batch_size * k == 512
    assert gpu.ae_train.lr == pytest.approx(ref.ae_train.lr * k**0.5)
    # the GAN starts, and checkpoints fall, at the same image as on a CPU
    assert gpu.ae_train.gan_start * gpu.ae_train.batch_size == 7488 * 128
    assert gpu.ae_train.checkpoint_every * k == ref.ae_train.checkpoint_every
    assert (gpu.dit_train, gpu.distill) == (ref.dit_train, ref.distill)
    # a scaled run (on the CPU here) still learns: test PSNR rises epoch over epoch
    cfg = dataclasses.replace(on_gpu(QUICK).ae_train, epochs=5, finetune_epochs=1)
    state = StateDir(tmp_path)
    train_ae(state, QUICK.ae, cfg, data_dir=mnist_dir, device=CPU, seed=3, quiet=True)
    history = [h["test_psnr"] for h in state.record("ae")["history"]]
    assert state.record("ae")["config"]["train"]["batch_size"] == 64 * k
    assert history[-1] > history[0] + 1.0, history


def test_a_gpu_run_takes_the_gpu_rule_unless_a_flag_says_otherwise(tmp_path, cli, monkeypatch):
    monkeypatch.setattr("ddream.cli_settings.on_cuda", lambda device: device == "auto")
    seen = {}

    def fake_train(state, model_cfg, cfg, **kwargs):
        seen["cfg"] = cfg
        return {"skipped": True, "metrics": {}}

    monkeypatch.setattr("ddream.stages.train_ae.train_ae", fake_train)
    assert cli("train-ae", "--state-dir", tmp_path, "--quiet").code == 0
    assert (seen["cfg"].batch_size, seen["cfg"].gan_start) == (512, 7488 // 4)
    res = cli("train-ae", "--state-dir", tmp_path, "--quiet", "--batch-size", "128")
    assert res.code == 0 and seen["cfg"].batch_size == 128  # the flag has the last word
    assert cli("train-ae", "--state-dir", tmp_path, "--quiet", "--device", "cpu").code == 0
    assert seen["cfg"].batch_size == 128 and seen["cfg"].lr == 2e-3


def test_the_gan_phase_s_augmented_epochs_train_the_decoder_alone_and_the_fine_tune_both():
    """DC-AE's decoder-only GAN phase: while the GAN term is on and the digits are augmented, the
    encoder's weights stay put and the decoder's move; the fine-tune epochs move both; off (the
    digitdreamer preset's way), the encoder learns in the GAN phase too."""
    from ddream.data import Split
    from ddream.models.discriminator import PatchDiscriminator
    from ddream.stages.train_ae import AETask

    gen = torch.Generator().manual_seed(0)
    digits = Split(torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8, generator=gen),
                   torch.arange(64) % 10)  # fmt: skip
    idx = torch.arange(32)

    def moved(decoder_only: bool, epoch: int) -> tuple[bool, bool]:
        cfg = dataclasses.replace(QUICK.ae_train, epochs=1, finetune_epochs=1, gan_start=0,
                                  batch_size=32, gan_decoder_only=decoder_only)  # fmt: skip
        torch.manual_seed(0)
        task = AETask(AutoEncoder(QUICK.ae), PatchDiscriminator(8), cfg, digits, digits, CPU, 0)
        parts = (task.ae.encoder, task.ae.decoder)
        before = [[p.detach().clone() for p in part.parameters()] for part in parts]
        task.step(epoch, 0, idx)
        return tuple(
            any(not torch.equal(p, b) for p, b in zip(part.parameters(), was, strict=True))
            for part, was in zip(parts, before, strict=True)
        )

    assert moved(True, 0) == (False, True)  # augmented + GAN: the decoder alone
    assert moved(True, 1) == (True, True)  # fine-tune + GAN: both
    assert moved(False, 0) == (True, True)  # the lever off
    assert get_profile("reference", "digitdreamer").ae_train.gan_decoder_only is False
