"""Settings: every field reachable from a TOML file, `ddream config` round-trips, one validate()."""

from __future__ import annotations

import dataclasses
import re

import pytest

from ddream.config import SECTIONS, AEConfig, DistillConfig, DiTConfig
from ddream.config_file import read_toml
from ddream.config_rules import CHOICES, validate
from ddream.errors import BadInput

# values that the generic rule below would make invalid, set by hand
SPECIAL = {
    ("ae", "latent_channels"): 32,
    ("dit", "patch_size"): 1,
    ("dit", "latent_size"): 4,
    ("dit", "width"): 256,
    ("dit", "heads"): 8,
    ("sample", "cfg_interval"): [0.1, 0.9],
    ("distill", "teacher_cfg_interval"): [0.1, 0.8],
    ("distill", "decoder_widths"): [4, 8, 16, 64, 64],
    ("distill", "judge_epochs"): 3,
    ("distill", "student_cfg"): 1.8,  # within the dial's range
    ("distill", "cfg_range"): [1.0, 2.5],
    ("distill", "dmd_t"): [0.2, 0.9],
    ("log", "tensorboard"): "tb-logs",
}


def other_value(section: str, name: str, default):
    """A valid value unlike the default, for any settings field."""
    if (section, name) in SPECIAL:
        return SPECIAL[(section, name)]
    if isinstance(default, bool):
        return not default
    if name in CHOICES:
        return next(c for c in CHOICES[name] if c != default)
    if isinstance(default, int):
        return default + 1
    if isinstance(default, float):
        return default / 2 if default else 0.25
    if isinstance(default, tuple):
        return [v * 2 for v in default]
    raise AssertionError(f"no rule for {section}.{name}")


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(v)


FIELDS = [(section, f.name) for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def test_the_sections_are_every_settings_dataclass_of_a_profile():
    from ddream.config import Profile

    profile_fields = {f.name for f in dataclasses.fields(Profile)} - {"name"}
    assert set(SECTIONS) == profile_fields


@pytest.mark.parametrize("section,name", FIELDS, ids=[f"{s}.{n}" for s, n in FIELDS])
def test_every_setting_can_be_set_from_a_file(section, name, tmp_path, cli):
    default = getattr(SECTIONS[section](), name)
    value = other_value(section, name, default)
    assert value != (list(default) if isinstance(default, tuple) else default)
    config = tmp_path / "run.toml"
    # the digitdreamer arch has no DC-AE project-in/out, so it asks for io "conv" beside it
    companion = 'io = "conv"\n' if (section, name) == ("ae", "arch") else ""
    config.write_text(f"[{section}]\n{name} = {toml_value(value)}\n{companion}")
    res = cli("config", "--config", config, "--state-dir", tmp_path / "none")
    assert res.code == 0, res.err
    (tmp_path / "out.toml").write_text(res.out)
    assert read_toml(tmp_path / "out.toml")[section][name] == value


def test_config_round_trips_and_the_state_dir_says_what_it_was_trained_with(
    tmp_path, cli, trained_state
):
    first = cli("config", "--profile", "quick", "--state-dir", tmp_path / "none")
    (tmp_path / "quick.toml").write_text(first.out)
    again = cli("config", "--config", tmp_path / "quick.toml", "--state-dir", tmp_path / "none")
    strip = lambda text: [ln for ln in text.splitlines() if not ln.startswith("#")]  # noqa: E731
    assert strip(again.out) == strip(first.out)
    trained = cli("config", "--state-dir", trained_state)  # trained with the quick profile
    assert "as trained in" in trained.out
    assert strip(trained.out) == strip(first.out)


def test_a_table_reaches_the_stage_that_uses_it(tmp_path, cli, mnist_dir):
    config = tmp_path / "run.toml"
    config.write_text("profile = 'quick'\n[dit]\nwidth = 33\n")
    res = cli("all", "--config", config, "--data-dir", mnist_dir, "--state-dir", tmp_path / "s")
    assert res.code == 2 and "DiTConfig: width 33 must be a multiple of heads 2" in res.err
    config.write_text("[ae_train]\nepochs = 0\nfinetune_epochs = 0\n")
    res = cli("train-ae", "--config", config, "--data-dir", mnist_dir, "--state-dir", tmp_path)
    assert res.code == 2 and "epochs plus finetune_epochs must be at least 1" in res.err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "cfg,match",
    [
        (AEConfig(widths=(8, 16, 32, 64, 64), latent_channels=7), "must divide width 64"),
        (AEConfig(widths=(8, 12, 32, 64, 64)), "do not fit the DC-AE shortcuts"),
        (AEConfig(arch="vae"), "arch 'vae': choose one of dcae, digitdreamer"),
        (AEConfig(blocks=(1, 1, 1, 1, 1)), "blocks[0] must be 0 (or io 'conv')"),
        (AEConfig(io="stride"), "io 'stride': choose one of shuffle, conv"),
        (DiTConfig(patch_size=3), "patch_size 3 must divide latent_size 2"),
        (DiTConfig(class_dropout=1.0), "class_dropout 1.0 must be in [0, 1)"),
        (DiTConfig(mlp_ratio=float("nan")), "mlp_ratio must be finite"),
        (DiTConfig(depth=-1), "depth -1: must not be negative"),
        (DistillConfig(dmd_t=(0.5, 0.2)), "dmd_t is (LO, HI) with 0 < LO < HI < 1"),
    ],
)
def test_validate_names_the_setting_and_the_rule(cfg, match):
    with pytest.raises(BadInput, match=re.escape(match)):
        validate(cfg)


def test_a_stored_config_that_predates_a_setting_takes_its_legacy_value():
    from ddream.config import from_dict, to_dict

    old = {k: v for k, v in to_dict(AEConfig(io="conv")).items() if k != "io"}
    assert from_dict(AEConfig, old) == AEConfig(io="conv")  # written before io existed
    assert from_dict(AEConfig, to_dict(AEConfig())).io == "shuffle"  # today's default, recorded


def test_models_refuse_settings_that_do_not_validate():
    from ddream.models.autoencoder import AutoEncoder

    with pytest.raises(BadInput, match="latent channels 7"):
        AutoEncoder(AEConfig(latent_channels=7))


@pytest.mark.parametrize(
    "cfg_range,student_cfg",
    [((2.0, 1.0), 1.4), ((0.5, 2.0), 1.4), ((1.0, 2.0), 2.5), ((1.0,), 1.4)],
)
def test_a_guidance_dial_that_is_no_range_or_misses_its_default_is_refused(cfg_range, student_cfg):
    from ddream.config import DistillConfig

    with pytest.raises(BadInput, match="cfg_range is"):
        validate(DistillConfig(cfg_range=cfg_range, student_cfg=student_cfg))
    validate(DistillConfig(cfg_range=(), student_cfg=student_cfg))  # baked in: any scale


@pytest.mark.parametrize("preset", ["default", "digitdreamer"])
def test_the_fast_profile_keeps_the_models_and_data_and_shortens_the_schedule(preset):
    from ddream.presets import get_profile

    ref, fast = get_profile("reference", preset), get_profile("fast", preset)
    assert (fast.ae, fast.dit, fast.sample) == (ref.ae, ref.dit, ref.sample)  # the same models
    assert fast.ae_train.train_limit == ref.ae_train.train_limit == 0  # all the data
    ae_epochs = lambda p: p.ae_train.epochs + p.ae_train.finetune_epochs  # noqa: E731
    assert ae_epochs(fast) < ae_epochs(ref) and fast.dit_train.epochs < ref.dit_train.epochs
    work = lambda p: p.distill.epochs * p.distill.pairs  # noqa: E731  (the student's)
    assert fast.distill.pairs < ref.distill.pairs and work(fast) < work(ref)
    # the GAN term starts at the same share of the autoencoder's steps
    share = lambda p: p.ae_train.gan_start / ae_epochs(p)  # noqa: E731
    assert abs(share(fast) - share(ref)) <= 1
    # a dial student defaults to the fast profile's own w (its teacher wants more guidance); a
    # baked-in one keeps its preset's scale
    dial = bool(ref.distill.cfg_range)
    assert fast.distill.student_cfg == (2.0 if dial else ref.distill.student_cfg)
    for section in ("ae", "ae_train", "dit", "dit_train", "sample", "distill"):
        validate(getattr(fast, section))


def test_a_run_with_the_digitdreamer_arch_asks_for_io_conv(tmp_path, cli):
    config = tmp_path / "run.toml"
    config.write_text('[ae]\narch = "digitdreamer"\n')
    res = cli("config", "--config", config, "--state-dir", tmp_path / "none")
    assert res.code == 2 and "set io = 'conv'" in res.err and len(res.err.strip().splitlines()) == 1
    preset = cli("config", "--preset", "digitdreamer", "--state-dir", tmp_path / "none")
    assert preset.code == 0 and 'io = "conv"' in preset.out


def test_every_setting_is_read_by_the_code_it_configures():
    """No setting in `ddream config` that nothing reads: each field of each settings table is read
    (as `.name`) by a module other than those that declare, check and preset them."""
    import dataclasses
    import re
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "ddream"
    declaring = {"config.py", "config_rules.py", "presets.py", "config_file.py"}
    code = "\n".join(p.read_text() for p in package.rglob("*.py") if p.name not in declaring)
    unread = [f"[{section}] {f.name}" for section, cls in SECTIONS.items()
              for f in dataclasses.fields(cls) if not re.search(rf"\.{f.name}\b", code)]  # fmt: skip
    assert unread == []
