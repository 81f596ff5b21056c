"""The distill stage: reflow onto teacher pairs, the student as the default sampler, its artifacts."""

import dataclasses
import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from torch import nn

from ddream.artifacts import Latents
from ddream.checkpoint import read_metadata
from ddream.config import DistillConfig, DiTConfig
from ddream.flow import sample_ode
from ddream.models.dit import DiT
from ddream.pairs import teacher_pairs
from ddream.runtime import seeded
from ddream.sampler import STUDENT_GIF_FRAMES, Sampler
from ddream.state import StateDir
from ddream.student import DistillTask

# the student's regression on its pairs alone (the defaults add the class term and DMD)
REGRESSION = {"class_term": 0.0, "dmd": 0.0}
CPU = torch.device("cpu")


class Fixed(nn.Module):
    """A stand-in judge that names every digit as one class."""

    def __init__(self, answer: int, classes: int = 10) -> None:
        super().__init__()
        self.answer, self.classes = answer, classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((len(x),), self.answer), self.classes).float()


def regression_task(teacher, cfg, pairs, judge=None, **fields) -> DistillTask:
    """A student (a copy of `teacher` unless `student` is given) learning `pairs`: no decoder, the
    judge (`Fixed(0)` unless given) reads the latents as they are; `fields` set any other."""
    student = fields.pop("student", None)
    if student is None:
        student = DiT(teacher.cfg)
        student.load_state_dict(teacher.state_dict())
    c = teacher.cfg.latent_channels
    stats = Latents(torch.empty(0), torch.empty(0), torch.zeros(c), torch.ones(c), "x")
    default = dict(
        student=student, decoder=None, teacher_decoder=None, stats=stats, cfg=cfg, pairs=pairs,
        val={"noise": pairs["noise"][:64], "labels": pairs["labels"][:64]},
        extra_latents=torch.empty(0), test_latents=torch.empty(0), device=CPU, seed=0,
        default_cfg=1.0, pixel_decoder=nn.Identity(), judge=judge or Fixed(0), teacher=teacher,
        real=teacher,
    )  # fmt: skip
    return DistillTask(**{**default, **fields})


def one_step_error(model: DiT, pairs: dict[str, torch.Tensor]) -> float:
    with torch.no_grad():
        t = torch.ones(len(pairs["labels"]))
        z = pairs["noise"] - model(pairs["noise"], t, pairs["labels"])
    return float(nn.functional.mse_loss(z, pairs["latents"]))


def test_the_validation_figure_is_the_share_of_the_kept_students_digits_the_judge_names_right():
    torch.manual_seed(0)
    teacher = DiT(DiTConfig(latent_channels=4, width=32, depth=2, heads=2)).eval()
    cfg = DistillConfig(pairs=64, teacher_steps=2, batch_size=32, **REGRESSION)
    pairs = teacher_pairs(teacher, 64, cfg, 1.0, 0, "train", CPU)
    for answer in (0, 3):  # 64 balanced classes: 7 of them 0, 6 of them 3
        task = regression_task(teacher, cfg, pairs, Fixed(answer))
        share = float((pairs["labels"][:64] == answer).float().mean())
        assert task.evaluate()["judge_acc"] == pytest.approx(share, abs=1e-4)
    task = regression_task(teacher, cfg, pairs, Fixed(0), pixel_decoder=lambda z: z * 0)
    judge = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))  # a judge that reads the digits
    task.judge = judge
    nn.init.zeros_(judge[1].weight)
    with torch.no_grad():
        judge[1].bias[5] = 1.0  # blank digits (the decoder above) read as 5s
    assert task.evaluate()["judge_acc"] == pytest.approx(
        float((pairs["labels"][:64] == 5).float().mean()), abs=1e-4
    )


def test_reflow_teaches_the_student_the_teachers_many_step_map_in_one_step():
    torch.manual_seed(0)
    teacher = DiT(DiTConfig(latent_channels=4, width=32, depth=2, heads=2))
    for p in teacher.parameters():  # a teacher whose ODE paths curve: any non-zero weights
        nn.init.normal_(p, std=0.15)
    teacher.eval()
    cfg = DistillConfig(
        pairs=256, teacher_steps=8, batch_size=64, epochs=40, lr=2e-3, cfg_range=(), **REGRESSION
    )
    pairs = teacher_pairs(teacher, 256, cfg, 1.5, 0, "train", CPU)
    held_out = teacher_pairs(teacher, 64, cfg, 1.5, 0, "validation", CPU)
    task = regression_task(teacher, cfg, pairs)
    before = one_step_error(task.student, held_out)  # the teacher's own single step (unguided)
    order = torch.arange(256)
    for step in range(cfg.epochs * 4):
        task.step(0, step, order[(step % 4) * 64 : (step % 4 + 1) * 64])
    after = one_step_error(task.student, held_out)
    assert after < before / 4, (before, after)


def test_the_distill_record_names_its_teacher_and_the_student_describes_itself(trained_state):
    state = StateDir(trained_state)
    rec = state.record("distill")
    assert rec["status"] == "done" and state.view("distill").status == "done"
    dit_sha = state.record("dit")["outputs"]["model"]["sha256"]
    assert rec["teacher_sha256"] == rec["inputs"]["dit"] == dit_sha
    assert set(rec["outputs"]) == {"model", "decoder"}
    meta = read_metadata(trained_state / "distill" / "student.safetensors")
    assert meta["kind"] == "ddream-student" and meta["teacher_sha256"] == dit_sha
    latents = read_metadata(trained_state / "latents" / "train.safetensors")
    assert meta["latent_mean"] == pytest.approx(latents["mean"])
    assert meta["latent_std"] == pytest.approx(latents["std"])
    assert meta["steps"] == 1 and meta["cfg"] == 1.0  # the default of its guidance dial
    assert meta["cfg_range"] == [1.0, 2.0]
    assert not (trained_state / "distill" / "resume.safetensors").exists()
    assert not (trained_state / "distill" / "pairs.safetensors").exists()


def test_sample_uses_the_student_by_default_and_the_teacher_on_request(
    trained_state, tmp_path, cli
):
    common = ["--state-dir", trained_state, "--device", "cpu", "--n", "20", "--json"]
    student = cli("sample", *common, "--npz", tmp_path / "s.npz", "--gif", tmp_path / "s.gif")
    assert student.code == 0, student.err
    got = json.loads(student.out)
    assert (got["model"], got["steps"], got["solver"], got["decoder"]) == (
        "student", 1, "euler", "distilled",
    )  # fmt: skip
    # the student's GIF shows the straight path from noise to digit that its one step takes
    assert iio.imread(tmp_path / "s.gif").shape[0] == STUDENT_GIF_FRAMES
    teacher = json.loads(
        cli("sample", *common, "--model", "teacher", "--npz", tmp_path / "t.npz").out
    )
    assert (teacher["model"], teacher["solver"], teacher["decoder"]) == (
        "teacher", "heun", "autoencoder",
    )  # fmt: skip


@pytest.mark.parametrize(
    "args,match",
    [
        (["--cfg", "2.5"], "learned guidance 1 to 2"),
        (["--cfg", "0.5"], "learned guidance 1 to 2"),
        (["--steps", "2"], "draws in one step"),
        (["--solver", "heun"], "Euler"),
        (["--model", "best"], "--model"),
    ],
)
def test_options_that_do_not_apply_to_the_student_are_refused(
    trained_state, tmp_path, cli, args, match
):
    out = tmp_path / "x.png"
    res = cli("sample", "--state-dir", trained_state, "--device", "cpu", "--grid", out, *args)
    assert res.code == 2 and match in res.err and res.err.count("\n") == 1
    assert not out.exists()


def test_the_teacher_still_samples_when_no_student_was_distilled(trained_state, tmp_path, cli):
    """State dirs from before the distill stage (or without it) sample with the teacher."""
    import shutil

    state = tmp_path / "old"
    shutil.copytree(trained_state, state)
    StateDir(state).drop_record("distill")
    shutil.rmtree(state / "distill")
    res = cli(
        "sample", "--state-dir", state, "--device", "cpu", "--json", "--npz", tmp_path / "o.npz"
    )
    assert res.code == 0, res.err
    assert json.loads(res.out)["model"] == "teacher"
    res = cli("sample", "--state-dir", state, "--model", "student", "--grid", tmp_path / "s.png")
    assert res.code == 1 and "ddream distill" in res.err


def test_a_damaged_student_is_named_not_silently_replaced_by_the_teacher(
    trained_state, tmp_path, cli
):
    import shutil

    state = tmp_path / "damaged"
    shutil.copytree(trained_state, state)
    student_file = next((state / "distill").glob("student*.safetensors"))
    student_file.write_bytes(student_file.read_bytes()[:-64])  # truncated
    res = cli(
        "sample", "--state-dir", state, "--device", "cpu", "--json", "--npz", tmp_path / "d.npz"
    )
    assert res.code == 0, res.err
    assert json.loads(res.out)["model"] == "teacher"
    assert "student is corrupt" in res.err and "ddream distill" in res.err


def test_the_student_lands_where_one_step_of_its_own_velocity_says(trained_state):
    """One student step is x0 = noise - v(noise, 1, class, w): no guidance row, no other pass."""
    from ddream.sampler import SampleRequest

    sampler = Sampler.from_state(StateDir(trained_state), torch.device("cpu"))
    labels = torch.tensor([1, 7, 7, 3])
    calls = []
    hook = sampler.dit.register_forward_hook(lambda m, inp, out: calls.append(len(inp[2])))
    images, _ = sampler.generate(labels, SampleRequest(n=4, seed=5))
    hook.remove()
    assert calls == [4]  # one pass, one row per digit
    noise = sampler.noise(4, 5)
    with torch.inference_mode():
        w = torch.full((4,), 1.0)  # the dial at its default
        z, _ = sample_ode(lambda x, t: sampler.dit(x, t, labels, w), noise, 1)
    assert torch.equal(images, sampler.decode(z))


def test_a_pruned_small_decoder_starts_from_the_trained_decoders_weights():
    from ddream.config import AEConfig
    from ddream.models.autoencoder import Decoder, warm_start

    torch.manual_seed(0)
    cfg = AEConfig(widths=(4, 8, 16, 16, 16), latent_channels=4)
    trained = Decoder(cfg).eval()
    for p in trained.parameters():  # residual blocks start at zero: give every weight a value
        nn.init.normal_(p, std=0.1)
    pruned_cfg = AEConfig(widths=cfg.widths, blocks=(0, 1, 1, 0, 1), latent_channels=4)
    fresh, warm = Decoder(pruned_cfg).eval(), Decoder(pruned_cfg).eval()
    taken = warm_start(warm, trained)
    theirs = trained.state_dict()
    assert taken == len(warm.state_dict()) == len(theirs) - 4  # all but the 4x4 block's 2 convs
    assert all(torch.equal(v, theirs[k]) for k, v in warm.state_dict().items())
    z = torch.randn(32, 4, 2, 2)
    with torch.no_grad():
        ref = trained(z)
        assert (warm(z) - ref).abs().mean() < (fresh(z) - ref).abs().mean() / 2
    narrow = Decoder(AEConfig(widths=(4, 4, 8, 16, 16), latent_channels=4))
    assert 0 < warm_start(narrow, trained) < len(narrow.state_dict())  # what fits, no error


@pytest.mark.parametrize("bf16", [False, True])  # True: the bf16 rule's channels-last bf16 step
def test_the_small_decoder_learns_on_every_kth_student_step_only(bf16, monkeypatch):
    from ddream.config import AEConfig
    from ddream.models.autoencoder import Decoder

    if bf16:
        monkeypatch.delenv("DDREAM_FP32", raising=False)
        monkeypatch.setattr("ddream.runtime.cpu_has_bf16", lambda: True)

    torch.manual_seed(0)
    cfg = AEConfig(widths=(4, 8, 16, 16, 16), latent_channels=4)
    teacher_decoder, decoder = Decoder(cfg).eval(), Decoder(cfg)
    dit = DiT(DiTConfig(latent_channels=4, width=32, depth=1, heads=2))
    dcfg = DistillConfig(pairs=64, teacher_steps=2, batch_size=16, decoder_every=3, **REGRESSION)
    pairs = teacher_pairs(dit, 64, dcfg, 1.5, 0, "train", torch.device("cpu"))
    task = regression_task(
        dit, dcfg, pairs, student=dit, decoder=decoder, teacher_decoder=teacher_decoder,
        extra_latents=torch.randn(64, 4, 2, 2), test_latents=torch.randn(16, 4, 2, 2),
    )  # fmt: skip
    stepped = []
    for step in range(7):
        before = [p.detach().clone() for p in decoder.parameters()]
        losses = task.step(0, step, torch.arange(16))
        changed = any(
            not torch.equal(a, b) for a, b in zip(before, decoder.parameters(), strict=True)
        )
        assert changed == ("dec" in losses)
        stepped.append(changed)
    assert stepped == [True, False, False, True, False, False, True]
    assert task.dec_dtype == ("bf16" if bf16 else "fp32")


# ---- the guidance dial ------------------------------------------------------------------------------
def tiny_teacher() -> DiT:
    torch.manual_seed(0)
    teacher = DiT(DiTConfig(latent_channels=4, width=32, depth=2, heads=2))
    for p in teacher.parameters():  # non-zero weights: guidance changes its digits
        nn.init.normal_(p, std=0.15)
    return teacher.eval()


def test_a_new_dial_student_starts_as_its_teacher_at_every_scale():
    teacher = tiny_teacher()
    student = DiT(teacher.cfg, guidance_input=True)
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    assert missing and all(k.startswith("w_embed.") for k in missing) and not unexpected
    x, t, y = torch.randn(6, 4, 2, 2), torch.rand(6), torch.arange(6) % 10
    for w in (1.0, 2.0, 3.0):
        got = student(x, t, y, torch.full((6,), w))
        assert torch.allclose(got, teacher(x, t, y), atol=1e-6)  # zero-initialised: no effect yet
    with pytest.raises(ValueError, match="w is an input"):
        student(x, t, y)
    with pytest.raises(ValueError, match="w is an input"):
        teacher(x, t, y, torch.ones(6))


def test_pairs_over_a_range_are_each_drawn_at_their_own_scale():
    teacher = tiny_teacher()
    cfg = DistillConfig(pairs=40, teacher_steps=4)
    cpu = torch.device("cpu")
    pairs = teacher_pairs(teacher, 40, cfg, (1.0, 3.0), 0, "train", cpu, interval=(0.0, 0.7))
    w = pairs["cfg"]
    assert w.shape == (40,) and 1.0 <= float(w.min()) and float(w.max()) <= 3.0
    # stratified: one scale in each fortieth of the range
    assert torch.equal(((w - 1.0) / 2.0 * 40).floor().sort().values, torch.arange(40.0))
    for i in (int(w.argmin()), int(w.argmax())):  # the same pair drawn alone at that scale
        alone = teacher_pairs(teacher, 40, cfg, float(w[i]), 0, "train", cpu, interval=(0.0, 0.7))
        assert torch.equal(alone["noise"][i], pairs["noise"][i])
        assert torch.allclose(alone["latents"][i], pairs["latents"][i], atol=1e-5)
    lo, hi = int(w.argmin()), int(w.argmax())
    assert not torch.allclose(
        pairs["latents"][lo],
        teacher_pairs(teacher, 40, cfg, float(w[hi]), 0, "train", cpu, interval=(0.0, 0.7))[
            "latents"
        ][lo],
    )


def test_the_student_learns_the_teachers_map_at_every_scale_of_its_dial():
    teacher = tiny_teacher()
    cfg = DistillConfig(pairs=256, teacher_steps=8, batch_size=64, epochs=40, lr=2e-3, **REGRESSION)
    cpu = torch.device("cpu")
    pairs = teacher_pairs(teacher, 256, cfg, (1.0, 3.0), 0, "train", cpu)
    student = DiT(teacher.cfg, guidance_input=True)
    student.load_state_dict(teacher.state_dict(), strict=False)
    task = regression_task(teacher, cfg, pairs, student=student, default_cfg=2.0)
    ends = {w: teacher_pairs(teacher, 64, cfg, w, 0, "validation", cpu) for w in (1.0, 3.0)}

    @torch.no_grad()
    def one_step(w: float) -> torch.Tensor:
        val = ends[w]
        return val["noise"] - student(
            val["noise"], torch.ones(64), val["labels"], torch.full((64,), w)
        )

    def err(w: float, target: float) -> float:
        return float((one_step(w) - ends[target]["latents"]).pow(2).mean())

    before = {w: err(w, w) for w in ends}  # the teacher's own single step, whatever w
    order = torch.arange(256)
    for step in range(cfg.epochs * 4):
        task.step(0, step, order[(step % 4) * 64 : (step % 4 + 1) * 64])
    student.eval()
    for w, other in ((1.0, 3.0), (3.0, 1.0)):  # each end: the teacher's digits at that scale
        assert err(w, w) < before[w] / 3, (w, before[w], err(w, w))
        # and not those of the other end (a student blind to w would fail this at one end)
        assert err(w, w) < 0.8 * err(w, other), (w, err(w, w), err(w, other))


def test_the_dial_changes_the_digits_and_its_ends_work(trained_state, tmp_path, cli):
    common = ["--state-dir", trained_state, "--device", "cpu", "--n", "20", "--json"]
    digits = {}
    for w in ("1", "1.5", "2"):
        res = cli("sample", *common, "--cfg", w, "--npz", tmp_path / f"{w}.npz")
        assert res.code == 0, res.err
        assert json.loads(res.out)["cfg"] == float(w) and json.loads(res.out)["steps"] == 1
        digits[w] = np.load(tmp_path / f"{w}.npz")["images"]
    # the quick profile's student learns too little to move a grey level, but its velocity moves
    # (a student blind to w would give the same bits; the tiny-model tests above show how far)
    sampler = Sampler.from_state(StateDir(trained_state), torch.device("cpu"))
    x, t, y = sampler.noise(20, 0), torch.ones(20), torch.arange(20) % 10
    with torch.no_grad():
        v1, v3 = (sampler.dit(x, t, y, torch.full((20,), w)) for w in (1.0, 2.0))
    assert not torch.equal(v1, v3)
    assert cli("sample", *common, "--npz", tmp_path / "d.npz").code == 0
    assert np.array_equal(np.load(tmp_path / "d.npz")["images"], digits["1"])


def test_the_python_api_takes_the_dial_and_refuses_outside_it(trained_state):
    import ddream
    from ddream.errors import BadInput

    model = ddream.load(trained_state, device="cpu")
    a, b = model.sample(classes=[3], n=4, cfg=1.0), model.sample(classes=[3], n=4, cfg=2.0)
    assert a.shape == b.shape == (4, 28, 28)  # both ends of the range it learned
    with pytest.raises(BadInput, match="cfg 2.5: the student learned guidance 1 to 2"):
        model.sample(n=1, cfg=2.5)


def test_a_student_with_guidance_baked_in_still_samples(trained_state, tmp_path, cli):
    """A state dir of the previous release: its student has one guidance scale in its weights."""
    import shutil

    from ddream.presets import get_profile
    from ddream.stages.distill import distill

    state = tmp_path / "old"
    shutil.copytree(trained_state, state)
    prof = get_profile("quick")
    distill(
        StateDir(state), dataclasses.replace(prof.distill, cfg_range=()),
        device=torch.device("cpu"), seed=0, quiet=True, force=True,
    )  # fmt: skip
    meta = read_metadata(state / "distill" / "student.safetensors")
    assert "cfg_range" not in meta
    res = cli(
        "sample", "--state-dir", state, "--device", "cpu", "--json", "--npz", tmp_path / "o.npz"
    )
    assert res.code == 0, res.err
    assert json.loads(res.out)["model"] == "student" and json.loads(res.out)["cfg"] == 1.0
    res = cli("sample", "--state-dir", state, "--cfg", "2", "--grid", tmp_path / "g.png")
    assert res.code == 2 and "baked in" in res.err and not (tmp_path / "g.png").exists()


def test_the_dit_keeps_its_early_ema_weights_as_the_guide_and_the_pairs_use_it(
    trained_state, tmp_path, mnist_dir
):
    """train-dit writes dit/guide.safetensors: its EMA weights after guide_share of its steps (the
    same as a run stopped there holds); distill draws its pairs with autoguidance when it exists."""
    from conftest import stop_after

    from ddream.artifacts import load_dit, load_guide
    from ddream.checkpoint import load_tensors, split_prefix
    from ddream.presets import get_profile
    from ddream.stages.train_dit import train_dit

    quick = get_profile("quick")
    record = StateDir(trained_state).record("dit")
    guide = load_guide(StateDir(trained_state), torch.device("cpu"))
    teacher, _, _ = load_dit(StateDir(trained_state), torch.device("cpu"))
    assert guide is not None
    pairs = zip(guide.state_dict().values(), teacher.state_dict().values(), strict=True)
    assert not all(torch.equal(a, b) for a, b in pairs)
    steps = (
        record["epochs"]
        * json.loads((trained_state / "dit" / "history.jsonl").read_text().splitlines()[0])[
            "steps_per_epoch"
        ]
    )
    at = round(quick.dit_train.guide_share * steps)
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(trained_state, copy)
    with stop_after(at), pytest.raises(Exception, match="stopped"):
        train_dit(StateDir(copy), quick.dit, dataclasses.replace(quick.dit_train, checkpoint_every=10_000),
                  device=torch.device("cpu"), seed=0, quiet=True, force=True, sample_cfg=quick.sample)  # fmt: skip
    ema = split_prefix(load_tensors(copy / "dit" / "resume.safetensors")[0], "ema")
    assert all(torch.equal(ema[k], v) for k, v in guide.state_dict().items())
    distilled = StateDir(trained_state).record("distill")["config"]
    assert distilled["autoguidance"] == quick.distill.teacher_autoguidance == 1.5
    assert (
        "autoguidance 1.5"
        in read_metadata(trained_state / "distill" / "student.safetensors")["teacher_sampler"]
    )


def test_a_dit_without_a_guide_distils_with_classifier_free_guidance_alone(
    trained_state, tmp_path, cli
):
    import shutil

    state = tmp_path / "copy"
    shutil.copytree(trained_state, state)
    st = StateDir(state)
    record = st.record("dit")  # as an earlier release, or guide_share = 0, leaves it
    del record["outputs"]["guide"]
    st.write_record("dit", record)
    (state / "dit" / "guide.safetensors").unlink()
    res = cli(
        "distill", "--force", "--state-dir", state, "--profile", "quick", "--device", "cpu", "-q"
    )
    assert res.code == 0, res.err
    assert st.record("distill")["config"]["autoguidance"] == 1.0


def _clustered_latents(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 4, 2, 2) latents in ten well-apart clusters, one a class."""
    centres = 3 * torch.randn(10, 4, 2, 2, generator=gen)
    labels = torch.arange(n) % 10
    return centres[labels] + 0.3 * torch.randn(n, 4, 2, 2, generator=gen), labels


def test_the_record_keeps_the_settings_as_an_earlier_release_did_and_switched_off_ones_stay_out(
    trained_state, tmp_path, cli
):
    """The class term and DMD are on by default: the record and the student's metadata say so. The
    record keeps the settings in their former names with the removed ones at their last value (a
    student of 0.1.0 stays fresh); switched off, a term's settings stay out of the record, and
    changing one of them while its switch is off redoes nothing; on, they reach it again."""
    import shutil

    from ddream.config import REMOVED

    meta = read_metadata(trained_state / "distill" / "student.safetensors")
    assert "class term 2.0 in pixels" in meta["method"]
    assert "distribution matching 1.0" in meta["method"]
    recorded = StateDir(trained_state).record("distill")["config"]["distill"]
    assert {"classifier_loss", "classifier_rows", "pixel_classifier_epochs", "dmd"} <= set(recorded)
    assert recorded["teacher_cfg"] == 1.0 and "student_cfg" not in recorded
    assert "teacher_classifier_guidance" not in recorded  # off, as 0.1.0 left it out
    assert {k: recorded[k] for k in REMOVED["distill"] if k in recorded} == {
        k: v for k, v in REMOVED["distill"].items() if k != "teacher_classifier_guidance"
    }
    state = tmp_path / "copy"
    shutil.copytree(trained_state, state)
    st = StateDir(state)
    base = ("distill", "--state-dir", state, "--profile", "quick", "--device", "cpu", "-q")
    (tmp_path / "off.toml").write_text("[distill]\nclass_term = 0.0\ndmd = 0.0\n")
    res = cli(*base, "--config", tmp_path / "off.toml")
    assert res.code == 0, res.err
    before = st.record("distill")
    later = {"teacher_classifier_guidance", "classifier_epochs", "classifier_loss", "dmd"}
    later |= {"classifier_rows", "pixel_classifier_epochs", "dmd_rows"}
    assert not later & set(before["config"]["distill"])  # as an earlier release recorded it
    method = read_metadata(state / "distill" / "student.safetensors")["method"]
    assert "class term" not in method and "distribution matching" not in method
    (tmp_path / "off2.toml").write_text(
        "[distill]\nclass_term = 0.0\ndmd = 0.0\ndmd_start = 0.5\n"
        "dmd_rows = 16\nclass_rows = 8\njudge_epochs = 1\n"
    )
    res = cli(*base, "--config", tmp_path / "off2.toml")
    assert res.code == 0, res.err
    assert st.record("distill") == before  # nothing redone
    (tmp_path / "on.toml").write_text("[distill]\ndmd = 0.5\n")
    res = cli(*base, "--config", tmp_path / "on.toml")
    assert res.code == 0, res.err
    on = read_metadata(state / "distill" / "student.safetensors")
    assert (
        "distribution matching 0.5" in on["method"] and "class term 2.0 in pixels" in on["method"]
    )
    assert st.record("distill")["config"]["distill"]["dmd"] == 0.5
    assert st.record("distill")["outputs"]["model"] != before["outputs"]["model"]


@pytest.mark.parametrize(
    "line,match",
    [
        ("teacher_cfg = 1.2", "teacher_cfg is now student_cfg"),
        ("adversarial = 0.1", "adversarial was removed in 0.2.0"),
        ("t_dist = 'ushape'", "t_dist was removed in 0.2.0"),
    ],
)
def test_a_settings_file_that_names_a_renamed_or_removed_setting_gets_one_line(
    tmp_path, cli, line, match
):
    (tmp_path / "old.toml").write_text(f"[distill]\n{line}\n")
    res = cli("distill", "--state-dir", tmp_path / "s", "--config", tmp_path / "old.toml")
    assert res.code == 2 and match in res.err and res.err.count("\n") == 1
    assert not (tmp_path / "s").exists()


def test_a_default_student_of_the_earlier_release_stays_fresh():
    """The default settings as the record keeps them fingerprint to what 0.1.0's default run
    recorded (its state.json: inputs.config 8f6813d45f6ad198), so upgrading redoes nothing."""
    from ddream.config import fingerprint
    from ddream.stages.distill import recorded_settings

    config = {"distill": recorded_settings(DistillConfig()), "guidance": 1.0, "autoguidance": 1.5,
              "interval": [0.0, 0.5], "seed": 0, "method": "reflow"}  # fmt: skip
    assert fingerprint(config) == "8f6813d45f6ad198"


class _Painter(nn.Module):
    """A fixed "decoder": (B, 4, 2, 2) latents -> (B, 1, 32, 32) pictures, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 32 * 32)
        nn.init.normal_(self.lin.weight, std=0.3)
        self.requires_grad_(False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.lin(z.flatten(1)).view(-1, 1, 32, 32)


def test_the_judge_learns_the_decoded_classes_from_its_own_seed():
    """judge.train_judge: a CNN trained on the decoder's pictures of the training latents names the
    pictures of held-out ones; the same seed trains the same weights, another seed others, and the
    caller's global RNG is left alone."""
    from ddream.judge import accuracy, decoded, train_judge

    x, y = _clustered_latents(800, torch.Generator().manual_seed(1))
    painter = _Painter()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = train_judge(10, 3, painter, (x[:600], y[:600]), (x[600:], y[600:]), 5, CPU, True)
    assert torch.equal(torch.rand(1), before)
    assert accuracy(a, decoded(painter, x[600:], CPU), y[600:], CPU) > 0.9
    b = train_judge(10, 3, painter, (x[:600], y[:600]), (x[600:], y[600:]), 5, CPU, True)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    c = train_judge(10, 3, painter, (x[:600], y[:600]), (x[600:], y[600:]), 6, CPU, True)
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))
    assert not any(p.requires_grad for p in a.parameters())


def test_where_the_hardware_has_bf16_the_judge_and_the_small_decoder_learn_in_it(monkeypatch):
    """The bf16 rule's distill levers (runtime.CPU_BF16_WORK): the judge trained in bf16 still names
    held-out pictures, with other weights than fp32's (so bf16 did compute), the same on a rerun."""
    from ddream.judge import accuracy, decoded, train_judge

    x, y = _clustered_latents(800, torch.Generator().manual_seed(1))
    painter, data = _Painter(), ((x[:600], y[:600]), (x[600:], y[600:]))
    fp32 = train_judge(10, 3, painter, *data, 5, CPU, True)
    monkeypatch.delenv("DDREAM_FP32", raising=False)
    monkeypatch.setattr("ddream.runtime.cpu_has_bf16", lambda: True)
    a, b = (train_judge(10, 3, painter, *data, 5, CPU, True) for _ in range(2))
    assert accuracy(a, decoded(painter, x[600:], CPU), y[600:], CPU) > 0.9
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(
        torch.equal(p, q) for p, q in zip(a.parameters(), fp32.parameters(), strict=True)
    )


def test_the_class_term_acts_on_its_rows_through_the_decoder():
    """[distill] class_term, class_rows: the class term names the decoded one-step digits of the first
    rows of a batch: a student trained with it draws digits the pixel classifier names as their
    class more surely than one without, and only those rows reach the decoder."""
    teacher, cpu = tiny_teacher(), torch.device("cpu")
    torch.manual_seed(1)
    painter, judge = _Painter(), nn.Sequential(nn.Flatten(), nn.Linear(1024, 10))
    nn.init.normal_(judge[1].weight, std=0.1)  # a judge with opinions
    judge.requires_grad_(False)
    seen = []
    painter.register_forward_hook(lambda m, i, o: seen.append(len(o)))
    pairs = teacher_pairs(teacher, 128, DistillConfig(teacher_steps=4), (1.0, 2.0), 0, "x", cpu)

    def trained(weight: float) -> tuple[DistillTask, list]:
        cfg = DistillConfig(pairs=128, batch_size=32, class_term=weight, class_rows=8, dmd=0.0)
        torch.manual_seed(0)
        task = regression_task(
            teacher, cfg, pairs, judge, student=DiT.started_from(teacher, True, cpu),
            default_cfg=1.5, pixel_decoder=painter,
        )  # fmt: skip
        task.total_steps = 24
        return task, [task.step(0, s, torch.arange(32) + 32 * (s % 4)) for s in range(24)]

    def surprise(task: DistillTask) -> float:  # the judge's CE on the decoded one-step digits
        ones = torch.ones(128)
        with torch.no_grad():
            x = pairs["noise"] - task.student(pairs["noise"], ones, pairs["labels"], ones + 0.5)
            return float(nn.functional.cross_entropy(judge(painter(x)), pairs["labels"]))

    (plain, plain_logs), (classed, classed_logs) = trained(0.0), trained(3.0)
    assert "class" in classed_logs[0] and "class" not in plain_logs[0]
    assert set(seen[:24]) == {8}  # its rows alone, each step
    assert surprise(classed) < surprise(plain) - 0.1


# ---- distribution matching ----------------------------------------------------------------------
class _Lands(nn.Module):
    """A velocity whose denoised estimate x_t - t v is `point`, wherever x_t is."""

    guidance_input = True

    def __init__(self, point: torch.Tensor) -> None:
        super().__init__()
        self.point = point

    def forward(self, x, t, y, w=None, dedupe=True):
        return (x - self.point) / t.view(-1, 1, 1, 1)

    def forward_with_cfg(self, x, t, y, scale):
        return self(x, t, y)


def test_distribution_matching_moves_the_students_latents_from_the_fakes_estimate_to_the_teachers():
    """The student's gradient is x0_fake - x0_real: descending it moves each latent toward the
    guided teacher's estimate, away from the fake's; where the two agree, nothing moves."""
    from ddream.student_losses import DistributionMatching

    teacher = tiny_teacher()
    cpu = torch.device("cpu")
    real, fake = torch.full((4, 2, 2), 1.0), torch.full((4, 2, 2), -1.0)
    dmd = DistributionMatching(teacher, _Lands(real), (0.0, 1.0), 1e-3, cpu)
    dmd.fake = _Lands(fake)
    x = torch.zeros(8, 4, 2, 2, requires_grad=True)
    y, w = torch.arange(8) % 10, torch.full((8,), 1.5)
    dmd.student_term(x, y, w, seeded(0, "t")).backward()
    step = -x.grad  # the way gradient descent moves x
    assert (step > 0).all()  # toward the teacher's estimate (+1), from the fake's (-1)
    # the fake as its teacher's copy (the dial at zero) and the teacher unguided: no pull at all
    dmd = DistributionMatching(teacher, teacher, (0.0, 0.0), 1e-3, cpu)
    x = torch.randn(8, 4, 2, 2, requires_grad=True)
    loss = dmd.student_term(x, y, w, seeded(0, "t"))
    loss.backward()
    assert float(loss.detach()) < 1e-8 and float(x.grad.abs().max()) < 1e-5


def test_the_distribution_matching_term_trains_its_fake_and_resumes_exactly():
    """[distill] dmd: the fake learns the student's latents, and it travels in the resume
    checkpoint so a resumed run takes the steps an uninterrupted one would."""
    teacher = tiny_teacher()
    cfg = DistillConfig(
        pairs=128, teacher_steps=4, batch_size=32, dmd=0.5, dmd_start=0.25, class_term=0.0
    )
    cpu = torch.device("cpu")
    pairs = teacher_pairs(teacher, 128, cfg, (1.0, 2.0), 0, "train", cpu)

    def task() -> DistillTask:
        torch.manual_seed(0)
        student = DiT(teacher.cfg, guidance_input=True)
        student.load_state_dict(teacher.state_dict(), strict=False)
        return regression_task(
            teacher, cfg, pairs, student=student, default_cfg=1.5, interval=(0.0, 0.5)
        )

    order = torch.arange(128)
    batch = lambda s: order[(s % 4) * 32 : (s % 4 + 1) * 32]  # noqa: E731
    a = task()
    a.total_steps = 16
    logs = [a.step(0, s, batch(s)) for s in range(16)]
    # the fake from a tenth of the steps before the student's term, that from dmd_start on
    assert "fake" not in logs[2] and "fake" in logs[3] and "dmd" not in logs[3]
    assert "dmd" in logs[4]
    fake = [float(x["fake"]) for x in logs[3:]]
    assert sum(fake[-4:]) < sum(fake[:4])  # it learns the student's latents
    b = task()
    b.total_steps = 16
    for s in range(8):
        b.step(0, s, batch(s))
    c = task()
    c.total_steps = 16
    c.load_state(b.state(), b.meta())
    for s in range(8, 16):
        c.step(0, s, batch(s))
    for k, v in a.student.state_dict().items():
        assert torch.equal(v, c.student.state_dict()[k]), k
    for k, v in a.dmd.fake.state_dict().items():
        assert torch.equal(v, c.dmd.fake.state_dict()[k]), k
