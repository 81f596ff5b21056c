"""Settings for every stage as plain dataclasses, their JSON round-trip and fingerprint, and the
settings renamed or removed since a release. Their checks live in `config_rules`, the named presets
and profiles in `presets`, settings files in `config_file`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AEConfig:
    """The F-16 autoencoder: 32x32x1 -> 2x2xC, four down/up-sampling steps."""

    arch: str = "dcae"  # dcae (residual shortcuts) or digitdreamer (the reference's plain blocks)
    widths: tuple[int, ...] = (8, 16, 32, 64, 64)  # channels at 32, 16, 8, 4, 2 pixels
    blocks: tuple[int, ...] = (0, 1, 1, 1, 1)  # residual blocks at each resolution (dcae)
    # How the 32x32 image meets the 16x16 level (read by dcae only). shuffle: DC-AE's project-in/out
    # when the first stage has no blocks: a pixel (un)shuffle, the 3x3 convolutions at 16x16
    # (widths[0] is unused); conv: a convolution at 32x32 each way, then a down/up step (models
    # trained before).
    io: str = "shuffle"
    latent_channels: int = 16  # 2x2x16: twice DigitDreamer's 2x2x8, the F-16 shape kept
    disc_width: int = 16  # patch discriminator's first width


@dataclass(frozen=True)
class AETrainConfig:
    """How train-ae runs: augmented epochs, then fine-tune epochs on the original digits."""

    epochs: int = 20
    finetune_epochs: int = 2
    batch_size: int = 128
    lr: float = 2e-3
    lr_schedule: str = "cosine"  # cosine (to 10%) or constant
    recon_loss: str = "l1+mse"  # l1+mse, or bce (on a sigmoid output)
    gan_loss: str = "hinge"  # hinge, or bce (non-saturating)
    gan_weight: float = 0.01  # the generator's adversarial term (0.05 cost PSNR: BENCHMARKS.md)
    # optimiser step at which the discriminator and GAN term start: 7,488 = 16 epochs of 468 steps,
    # so the GAN acts in the last 4 augmented and the 2 fine-tune epochs. Measured against 2,000
    # (BENCHMARKS.md): train-ae 625 s instead of 794 s, test PSNR 28.54 dB instead of 28.30 and
    # reconstruction FID 0.246 instead of 0.372.
    gan_start: int = 7488
    # While the GAN term is on and the digits are augmented (epochs 17-20 by default), the decoder
    # alone learns on the frozen encoder's latents (DC-AE's decoder-only GAN phase; the encoder's
    # backward skipped: the step 1.33x faster); the fine-tune epochs train both again, the encoder
    # on the original digits. False: the whole autoencoder learns throughout.
    gan_decoder_only: bool = True
    rotate: float = 15.0  # degrees, +-
    translate: tuple[float, float] = (0.1, 0.1)  # fraction of the digit, +- (x, y)
    scale: tuple[float, float] = (0.85, 1.15)
    shear: float = 10.0  # degrees, +-
    train_limit: int = 0  # use only the first N training images (0 = all)
    test_limit: int = 0  # evaluate on the first N test images (0 = all)
    checkpoint_every: int = 200  # steps between resume checkpoints (and at every epoch end)


@dataclass(frozen=True)
class DiTConfig:
    """A small class-conditional DiT over the 2x2 latent, conditioned through adaLN-Zero."""

    latent_channels: int = 16  # must match the autoencoder's (train-dit takes it from the latents)
    latent_size: int = 2
    patch_size: int = (
        2  # 2: the 2x2 latent is one token (lower FID, 2.8x faster, BENCHMARKS.md); 1: 4
    )
    # 160 wide, 4 deep (was 128 x 6, the same work a row): width bought more than depth, and within
    # 10 epochs a wider, shallower DiT drew better digits at every guidance scale (BENCHMARKS.md)
    width: int = 160
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    num_classes: int = 10
    class_dropout: float = 0.1  # share of labels replaced by the null class in training
    # the MLP's GELU: "exact" (erf), or "tanh" (the approximation DiT used, and ddream up to 0.2.0:
    # models without this setting load with it). The same curve within 5e-4, and on a CPU the exact
    # form ran 4.3-4.5x faster: the teacher's pairs 1.20x (benchmarks/train_levers.py)
    gelu: str = "exact"


@dataclass(frozen=True)
class DiTTrainConfig:
    """How train-dit runs: rectified flow on (standardised) latents, with an EMA of the weights."""

    epochs: int = 10
    # 64 at lr 2e-3 (was 128 at 1e-3; 256 before that): the DiT underfits in 10 epochs, and twice
    # the updates at twice the rate lifted the unguided teacher's recall from 0.829 to 0.840 and
    # cut its FID at guidance 1.3 from ~3.9 to 3.15, for ~1.5x train-dit's time (BENCHMARKS.md)
    batch_size: int = 64
    lr: float = 2e-3
    lr_schedule: str = "cosine"
    weight_decay: float = 0.0
    ema_decay: float = (
        0.998  # chosen by FID (BENCHMARKS.md); 0 = no EMA: sample with the raw weights
    )
    standardise: bool = True  # per-channel mean/std of the training latents
    logit_normal: bool = True  # t = sigmoid(N(0,1)) rather than uniform
    uniform_share: float = 0.0  # of the logit-normal t, this share drawn uniformly instead
    # The autoguidance model (dit/guide.safetensors): the EMA weights after this share of the run's
    # steps (0.2: after 2 of 10 epochs), kept at no cost; the teacher's pairs step away from it
    # ([distill] teacher_autoguidance). 0 = none.
    guide_share: float = 0.2
    train_limit: int = 0
    test_limit: int = 0
    # 1,000 steps (~13 s of a 2-core CPU's work, as the autoencoder's 200): at 200 its checkpoints
    # took 7% of its loop (two epochs 25.9 s against 24.0 s without them, BENCHMARKS.md)
    checkpoint_every: int = 1000


@dataclass(frozen=True)
class SampleConfig:
    """Defaults for sampling with a model of this preset."""

    # Chosen by measurement (BENCHMARKS.md): Heun's 2 steps (3 evaluations) sample over 2,000 digits/s
    # on a 2-core CPU at FID 11.5 (2,000 samples), far below the digitdreamer preset's 81 at 12 Euler
    # steps; --steps 6 gives FID 6.5 at under half the speed. 1.25 is the lowest guidance that keeps
    # class accuracy above 98%.
    steps: int = 2
    cfg: float = 1.25
    solver: str = "heun"
    # t range (1 = noise) in which guidance applies; outside it the conditional velocity alone
    # (Kynkaanniemi et al. 2024: guidance at high noise costs diversity, at low noise it does little)
    cfg_interval: tuple[float, float] = (0.0, 1.0)


@dataclass(frozen=True)
class DistillConfig:
    """How `ddream distill` makes the fast sampling models: a one-step student of the guided DiT
    and, optionally, a smaller decoder that imitates the autoencoder's. Each default was chosen by
    measurement; BENCHMARKS.md's history has the runs behind each line."""

    pairs: int = 60_000  # (noise, class) -> teacher latent pairs, drawn once
    teacher_steps: int = 12  # the teacher's sampler for the pairs: Heun, at the preset's guidance
    teacher_solver: str = "heun"
    # The student's default guidance scale w (0 = the teacher's own sampling default); with
    # cfg_range () the one scale its pairs are drawn at. 1 drew the best FID and recall on the dial.
    student_cfg: float = 1.0
    teacher_cfg_interval: tuple[float, ...] = (0.0, 0.5)  # t range where the pairs' CFG applies
    # The teacher steps this far from its own early weights (autoguidance; 1 = none): FID 2.51,
    # recall 0.863 against CFG 1.4's 3.19, 0.814
    teacher_autoguidance: float = 1.5
    # The guidance dial: the pairs' scales spread evenly over (LO, HI), w an input of the student;
    # () = one scale baked in (the digitdreamer preset's student, as before the dial)
    cfg_range: tuple[float, ...] = (1.0, 2.0)
    # The one-step objective: huber (pseudo-Huber, as in sCM; lower FID and higher recall than l2
    # at every scale) or l2 (plain regression, the digitdreamer preset's)
    loss: str = "huber"
    # Distribution matching (DMD; 0 = off): a fake copy of the teacher learns the student's own
    # latents, on the first dmd_rows rows of each batch, t in dmd_t, from dmd_start of the steps on;
    # beside the class term it lifted class accuracy and recall together
    dmd: float = 1.0
    dmd_start: float = 0.3
    dmd_t: tuple[float, ...] = (0.3, 0.98)
    dmd_rows: int = 32
    # The class term (0 = off): the stage's judge (a small CNN trained here for judge_epochs on the
    # autoencoder's decodings, never `ddream eval`'s network) names the decoded one-step digits of
    # the first class_rows rows; class accuracy 99.33-99.40% over three seeds against 98.8-98.9%
    # in latents. The judge also scores the student's validation digits.
    class_term: float = 2.0
    class_rows: int = 32
    judge_epochs: int = 2
    epochs: int = 10  # with DMD and the class term, 10 epochs drew as well as 15
    batch_size: int = 256
    lr: float = 1e-3
    ema_decay: float = 0.999
    # A cheaper decoder for sampling that imitates the autoencoder's, started from its weights where a
    # tensor fits (() = the autoencoder's own): the default drops the 4x4 residual block, ~1.15x the
    # decoding rate at test PSNR 28.43 dB against 28.45
    decoder_widths: tuple[int, ...] = (8, 16, 32, 64, 64)
    decoder_blocks: tuple[int, ...] = (0, 1, 1, 0, 1)
    decoder_lr: float = 5e-4
    decoder_every: int = 8  # the decoder learns on every k-th student step
    # distill on the first N pairs only, its judge on the first N training latents (0 = all)
    train_limit: int = 0
    checkpoint_every: int = 200


@dataclass(frozen=True)
class LogConfig:
    """What a training run keeps to be looked at besides its model (ddream/watch.py): the history
    always, snapshots and TensorBoard if asked. It changes nothing that is trained, so it makes no
    stage stale."""

    every: int = 0  # optimiser steps between the loss points of the history; 0: 20 points an epoch
    snapshots: bool = True  # fixed-noise pictures after every epoch (and one before the first)
    tensorboard: str = ""  # a folder for TensorBoard event files ("" = none)


@dataclass(frozen=True)
class Profile:
    """Every stage's settings under one name."""

    name: str
    ae: AEConfig = field(default_factory=AEConfig)
    ae_train: AETrainConfig = field(default_factory=AETrainConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    dit_train: DiTTrainConfig = field(default_factory=DiTTrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    log: LogConfig = field(default_factory=LogConfig)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as JSON-ready data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


# Settings renamed (table -> {former name: name}) and removed (table -> {name: its last default}):
# a settings file that names one gets one line saying so; a stage's record keeps the former names and
# the removed settings' values, so that models trained before stay fresh (stages/distill.py).
RENAMED: dict[str, dict[str, str]] = {
    "distill": {"teacher_cfg": "student_cfg", "classifier_loss": "class_term",
                "classifier_rows": "class_rows", "pixel_classifier_epochs": "judge_epochs"},
}  # fmt: skip
# measured and not kept in 0.2.0 (BENCHMARKS.md's history has each): classifier guidance for the
# pairs, the class term in latents, the adversarial term, the U-shaped t, a 2-step student
REMOVED: dict[str, dict[str, Any]] = {
    "distill": {"teacher_classifier_guidance": 0.0, "classifier_epochs": 8, "adversarial": 0.0,
                "adversarial_lr": 2e-4, "t_dist": "one", "student_steps": 1},
}  # fmt: skip

# Settings added with a new default: the value that a config written before them meant.
LEGACY: dict[type, dict[str, Any]] = {AEConfig: {"io": "conv"}, DiTConfig: {"gelu": "tanh"}}


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """A config rebuilt from `to_dict` output; lists become tuples where the field is a tuple; a
    setting the data predates takes its LEGACY value, not today's default."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in LEGACY.get(cls, {}).items() if k not in data}
    for key, value in data.items():
        if key in known:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


def fingerprint(data: Any) -> str:
    """A short, stable hash of JSON-ready data (configs, input descriptions)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---- one place for every settings check -------------------------------------------------------------
# A TOML file's tables, one per settings dataclass: [ae], [ae_train], [dit], [dit_train], [sample],
# [distill], [log]; keys are the dataclasses' field names.
SECTIONS: dict[str, type] = {
    "ae": AEConfig,
    "ae_train": AETrainConfig,
    "dit": DiTConfig,
    "dit_train": DiTTrainConfig,
    "sample": SampleConfig,
    "distill": DistillConfig,
    "log": LogConfig,
}
