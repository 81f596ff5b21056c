"""The rules that make training fast, each on a tiny model: bf16 steps where the hardware has it,
the fused optimiser, the multi-tensor EMA (the resume tests and the GPU rule live with train-ae)."""

import torch

from ddream.train import EMA

CPU = torch.device("cpu")


def test_training_runs_in_bf16_where_the_hardware_has_it_and_the_work_gains(monkeypatch):
    import pytest

    from ddream.runtime import CPU_BF16_WORK, exact_dtype, training_dtype

    monkeypatch.delenv("DDREAM_FP32", raising=False)
    monkeypatch.setattr("ddream.runtime.cpu_has_bf16", lambda: True)
    assert {w: training_dtype(CPU, w) for w in CPU_BF16_WORK} == {
        "autoencoder": "bf16", "teacher pairs": "bf16", "dit step": "fp32", "student step": "fp32",
        "decoder step": "bf16", "judge": "bf16",
    }  # fmt: skip
    assert exact_dtype(CPU) == "fp32"  # encoding and held-out scores stay exact
    monkeypatch.setenv("DDREAM_FP32", "1")  # asked for fp32: the same pixels on every CPU
    assert {training_dtype(CPU, w) for w in CPU_BF16_WORK} == {"fp32"}
    monkeypatch.delenv("DDREAM_FP32")
    monkeypatch.setattr("ddream.runtime.cpu_has_bf16", lambda: False)  # AVX2, or ONEDNN held back
    assert {training_dtype(CPU, w) for w in CPU_BF16_WORK} == {"fp32"}
    monkeypatch.setattr("ddream.runtime.native_bf16", lambda device: True)  # a GPU: all of it
    assert {training_dtype(torch.device("cuda"), w) for w in CPU_BF16_WORK} == {"bf16"}
    with pytest.raises(ValueError):
        training_dtype(CPU, "sample")


def test_the_optimiser_is_fused_and_takes_adamw_s_step():
    from ddream.train import adamw

    torch.manual_seed(0)
    a, b = torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)
    b.load_state_dict(a.state_dict())
    start = [p.detach().clone() for p in a.parameters()]
    fused = adamw(a.parameters(), 1e-2, betas=(0.9, 0.99), weight_decay=0.01)
    plain = torch.optim.AdamW(b.parameters(), lr=1e-2, betas=(0.9, 0.99), weight_decay=0.01)
    assert fused.defaults["fused"] is True
    x = torch.randn(16, 8)
    for _ in range(3):
        for model, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    for p, q, p0 in zip(a.parameters(), b.parameters(), start, strict=True):
        assert torch.allclose(p, q, atol=1e-6) and not torch.equal(p, p0)


def test_the_ema_update_is_per_tensor_lerp_bit_for_bit():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.BatchNorm1d(7))
    model(torch.randn(4, 5))  # the batch norm's counter and running stats move too
    ema = EMA(model, 0.9)
    plain = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for n in range(1, 30):
        for p in model.parameters():
            p.data.add_(torch.randn_like(p))
        model(torch.randn(4, 5))
        ema.update(model)
        d = min(0.9, 1 - 1 / n)
        for k, v in model.state_dict().items():
            plain[k].lerp_(v, 1 - d) if v.dtype.is_floating_point else plain[k].copy_(v)
    assert all(torch.equal(plain[k], ema.shadow[k]) for k in plain)
    assert not torch.equal(ema.shadow["0.weight"], model[0].weight)  # it does lag the weights


def test_a_fused_optimiser_restored_for_channels_last_weights_steps_as_the_unbroken_one():
    from ddream.checkpoint import flatten_optimizer, restore_optimizer
    from ddream.train import adamw

    def run(stop_at: int | None) -> torch.Tensor:
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
        opt = adamw(conv.parameters(), 1e-2)
        x = torch.randn(2, 3, 6, 6).contiguous(memory_format=torch.channels_last)
        for step in range(6):
            if step == stop_at:  # as a resumed run: fresh objects, the state loaded back
                tensors, groups = flatten_optimizer(opt, "opt")
                tensors = {k: v.clone().contiguous() for k, v in tensors.items()}  # as from disk
                weights = {k: v.clone() for k, v in conv.state_dict().items()}
                conv = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
                conv.load_state_dict(weights)
                opt = adamw(conv.parameters(), 1e-2)
                restore_optimizer(opt, tensors, "opt", groups)
            opt.zero_grad()
            conv(x).pow(2).mean().backward()
            opt.step()
        return conv.weight.detach()

    assert torch.equal(run(None), run(3))


def test_encoding_in_slices_gives_the_latents_of_one_call(monkeypatch):
    from ddream.data import Split
    from ddream.models.autoencoder import AutoEncoder
    from ddream.presets import get_profile
    from ddream.runtime import rows_per_call
    from ddream.stages.encode import encode_split

    assert rows_per_call("encoder", CPU) == 256  # the CPU's rule: faster, and less memory
    torch.manual_seed(0)
    ae = AutoEncoder(get_profile("quick").ae).eval()
    images = torch.randint(0, 256, (600, 28, 28), dtype=torch.uint8)
    split = Split(images, torch.zeros(600, dtype=torch.long))
    sliced, whole = encode_split(ae, split, CPU), encode_split(ae, split, CPU, batch=600)
    assert sliced.shape == (600, 4, 2, 2)
    assert torch.allclose(sliced, whole, atol=1e-5)
