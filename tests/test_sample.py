"""The sampler's guidance interval, and sampling defaults that travel without retraining the DiT."""

import json

import pytest
import torch

from ddream.config import SampleConfig
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
    assert student.code == 2 and "baked in" in student.err


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
