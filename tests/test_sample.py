"""The sampler's guidance interval, and sampling defaults that travel without retraining the DiT."""

import json

import pytest
import torch

from ddream.config import SampleConfig
from ddream.errors import BadInput
from ddream.flow import guidance_at
from ddream.presets import get_profile
from ddream.sampler import Sampler, SampleRequest
from ddream.stages.train_dit import train_dit
from ddream.state import StateDir


def test_guidance_applies_inside_its_interval_only():
    assert guidance_at(0.5, 1.5, (0.2, 0.8)) == 1.5
    assert guidance_at(0.9, 1.5, (0.2, 0.8)) == 1.0  # high noise: the conditional velocity alone
    assert guidance_at(0.1, 1.5, (0.2, 0.8)) == 1.0
    assert guidance_at(1.0, 1.5, None) == 1.5


def test_a_full_interval_draws_what_plain_guidance_draws_and_a_short_one_does_not(trained_state):
    teacher = Sampler.from_state(StateDir(trained_state), torch.device("cpu"), "teacher")
    labels = torch.arange(10)
    for p in teacher.dit.final.parameters():  # make guidance matter in the tiny quick model
        torch.nn.init.normal_(p, std=0.3)
    req = SampleRequest(n=10, steps=4, cfg=3.0, model="teacher")
    plain, _ = teacher.generate(labels, req)
    full, _ = teacher.generate(
        labels, SampleRequest(**{**req.__dict__, "cfg_interval": (0.0, 1.0)})
    )
    none, _ = teacher.generate(labels, SampleRequest(**{**req.__dict__, "cfg": 1.0}))
    short, _ = teacher.generate(
        labels, SampleRequest(**{**req.__dict__, "cfg_interval": (0.3, 0.6)})
    )
    assert torch.equal(plain, full)
    assert not torch.equal(short, plain) and not torch.equal(short, none)


@pytest.mark.parametrize(
    "interval,code", [(("0.2", "0.8"), 0), (("0.8", "0.2"), 2), (("0", "2"), 2)]
)
def test_cfg_interval_option(trained_state, tmp_path, cli, interval, code):
    res = cli(
        "sample", "--state-dir", trained_state, "--device", "cpu", "--model", "teacher",
        "--cfg-interval", *interval, "--json", "--npz", tmp_path / "x.npz",
    )  # fmt: skip
    assert res.code == code, res.err
    if code == 0:
        assert json.loads(res.out)["cfg_interval"] == [0.2, 0.8]
    else:
        assert "--cfg-interval" in res.err and not (tmp_path / "x.npz").exists()
    student = cli("sample", "--state-dir", trained_state, "--cfg-interval", "0.2", "0.8")
    assert student.code == 2 and "fixed by its training" in student.err


def test_new_sampling_defaults_do_not_make_the_dit_stale(trained_state, tmp_path):
    import shutil

    state = tmp_path / "s"
    shutil.copytree(trained_state, state)
    prof = get_profile("quick")
    other = SampleConfig(steps=7, cfg=1.5, solver="euler", cfg_interval=(0.1, 0.9))
    res = train_dit(
        StateDir(state), prof.dit, prof.dit_train, device=torch.device("cpu"), seed=0,
        quiet=True, sample_cfg=other,
    )  # fmt: skip
    assert res["skipped"]  # same training: nothing retrained, whatever the sampling defaults


def test_dtype_auto_means_bf16_only_on_hardware_that_has_it(monkeypatch):
    from ddream.runtime import native_bf16, sampling_dtype

    cpu = torch.device("cpu")
    monkeypatch.delenv("DDREAM_FP32", raising=False)
    monkeypatch.setattr("ddream.runtime.cpu_has_bf16", lambda: True)
    assert sampling_dtype(cpu) == "bf16" and sampling_dtype(cpu, "fp32") == "fp32"
    assert native_bf16(torch.device("meta")) is False  # neither a GPU nor a CPU
    monkeypatch.setattr("ddream.runtime.cpu_has_bf16", lambda: False)
    assert sampling_dtype(cpu) == "fp32" and sampling_dtype(cpu, "bf16") == "bf16"
    with pytest.raises(BadInput, match="--dtype 'fp16'"):
        sampling_dtype(cpu, "fp16")


def test_a_cpu_has_bf16_when_its_flags_say_so_and_onednn_may_use_them(
    tmp_path, monkeypatch, fp32_by_default
):
    cpu_has_bf16 = fp32_by_default  # the real probe (conftest stands it in for the suite)
    monkeypatch.setattr("torch.ops.mkldnn._is_mkldnn_bf16_supported", lambda: True, raising=False)
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_has_bf16(str(info))
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert not cpu_has_bf16(str(info))  # AVX-512 alone: oneDNN would emulate bf16
    assert not cpu_has_bf16(str(tmp_path / "absent"))  # no /proc: macOS, Windows
    info.write_text("flags\t\t: amx_bf16 avx512_bf16\n")
    monkeypatch.setattr("torch.ops.mkldnn._is_mkldnn_bf16_supported", lambda: False)
    assert not cpu_has_bf16(str(info))  # ONEDNN_MAX_CPU_ISA held it below bf16


def test_bf16_sampling_runs_in_bf16_and_draws_nearly_the_fp32_digits(trained_state):
    state = StateDir(trained_state)
    fp32 = Sampler.from_state(state, torch.device("cpu"), "student", "fp32")
    bf16 = Sampler.from_state(state, torch.device("cpu"), "student", "bf16")
    seen = []
    hook = bf16.decoder.decoder.out.register_forward_hook(
        lambda m, args, out: seen.append(out.dtype)
    )
    labels = torch.arange(40) % 10
    a, _ = fp32.generate(labels, SampleRequest(n=40))
    b, _ = bf16.generate(labels, SampleRequest(n=40))
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}  # the decoder did compute in bf16
    assert a.dtype == b.dtype == torch.uint8 and a.float().std() > 10
    diff = (a.int() - b.int()).abs().float()
    # grey levels: a rounding difference, not other digits (the real model: 0.2 on average, 99% of
    # pixels within 3; CHANGELOG, BENCHMARKS)
    assert diff.mean() < 0.5 and (diff <= 3).float().mean() >= 0.99
    with pytest.raises(BadInput, match="loaded for bf16"):
        bf16.generate(labels, SampleRequest(n=40, dtype="fp32"))


def test_dtype_option_is_reported_and_checked(trained_state, tmp_path, cli):
    res = cli("sample", "--state-dir", trained_state, "--dtype", "bf16", "--json",
              "--npz", tmp_path / "x.npz")  # fmt: skip
    assert res.code == 0, res.err
    assert json.loads(res.out)["dtype"] == "bf16"
    auto = cli("sample", "--state-dir", trained_state, "--npz", tmp_path / "y.npz")
    assert auto.code == 0 and "fp32" in auto.out  # the suite's machines count as fp32 (conftest)
    bad = cli("sample", "--state-dir", trained_state, "--dtype", "fp8", "--npz", tmp_path / "z.npz")
    assert bad.code == 2 and "--dtype" in bad.err and not (tmp_path / "z.npz").exists()
