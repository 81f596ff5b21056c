"""The named settings: presets (ddream's recipe, DigitDreamer's configuration) and the profiles that
scale them (reference: the full schedule; fast: a first look in minutes; quick: seconds, a smoke test)."""

from __future__ import annotations

import dataclasses

from ddream.config import (
    AEConfig,
    AETrainConfig,
    DistillConfig,
    DiTConfig,
    DiTTrainConfig,
    Profile,
    SampleConfig,
)

PRESETS: dict[str, Profile] = {
    # ddream's own recipe (DC-AE shortcuts, hinge GAN after a warm-up, EMA, standardised latents).
    "default": Profile(name="default"),
    # DigitDreamer's configuration, for side-by-side comparison: plain GroupNorm blocks with 1x1
    # conv + pixel (un)shuffle and no shortcut, sigmoid output, BCE + 0.01 BCE-GAN from the start,
    # its RandomAffine ranges, a width-48 8-layer DiT on one 2x2 patch, AdamW 6e-4, batch 128,
    # 12 Euler steps at CFG 2, no EMA, no latent standardisation. Unlike its notebook, the GAN
    # term here reaches the autoencoder (the notebook detached the reconstruction).
    "digitdreamer": Profile(
        name="digitdreamer",
        ae=AEConfig(
            arch="digitdreamer",
            widths=(4, 8, 16, 32, 32),
            blocks=(1, 1, 1, 1, 0),
            io="conv",  # what its layout is, blocks at 32x32 (io itself is read by dcae only)
            latent_channels=8,
        ),
        ae_train=AETrainConfig(
            lr=6e-4,
            lr_schedule="constant",
            recon_loss="bce",
            gan_loss="bce",
            gan_weight=0.01,
            gan_start=0,
            gan_decoder_only=False,  # its GAN acts from the first step, on the whole autoencoder
            rotate=30.0,
            translate=(0.1, 0.2),
            scale=(0.75, 1.25),
            shear=10.0,
        ),
        dit=DiTConfig(latent_channels=8, width=48, depth=8, heads=4, patch_size=2, gelu="tanh"),
        dit_train=DiTTrainConfig(
            batch_size=128,
            lr=6e-4,
            lr_schedule="constant",
            weight_decay=0.01,
            ema_decay=0.0,
            standardise=False,
            guide_share=0.0,
        ),
        sample=SampleConfig(steps=12, cfg=2.0, solver="euler"),
        # not in DigitDreamer: a student of its DiT, at the preset's own guidance (it keeps its own
        # plain decoder; its guidance baked in, with the plain L2 objective, as before the dial)
        distill=DistillConfig(
            student_cfg=0.0,
            teacher_cfg_interval=(),
            decoder_widths=(),
            cfg_range=(),
            loss="l2",
            teacher_autoguidance=1.0,
            class_term=0.0,
            dmd=0.0,
            epochs=15,
            ema_decay=0.99,
        ),
    ),
}
PROFILES = ("reference", "fast", "quick")

# The `fast` profile: the reference models on all the data, on a short schedule, for a first look
# (digits a person reads as their class in a few minutes; BENCHMARKS.md has its time and FID).
FAST_AE_EPOCHS, FAST_FINETUNE, FAST_DIT_EPOCHS = 3, 1, 6
# The EMA must average over far fewer updates than a short run takes: at the reference 0.998 a 3-epoch
# DiT's EMA weights were mostly its first, untrained updates (teacher FID 185 against 12 at 0.99 and
# 6 epochs, 2,000 samples; BENCHMARKS.md).
FAST_DIT_EMA = 0.99
# 30,000 teacher pairs rather than 10,000: the student's FID 13.0 instead of 16.5 for ~20 s more; the
# DiT's 10 reference epochs on top gave 9.7 for ~45 s more again (BENCHMARKS.md). A first look keeps 6.
FAST_PAIRS, FAST_DISTILL_EPOCHS = 30_000, 10
# The fast student's default guidance: its short-trained teacher wants more than the reference's w 1.
# On real MNIST its one step drew FID 14.10 at w 1, 12.30 at 1.2, 9.46 at 1.6 and 7.92 at 2, recall
# 0.730 -> 0.714; with the class term in pixels and DMD its dial is flat: FID 8.69 / 8.31 / 8.35
# at 1.4 / 1.7 / 2, class accuracy 99.47-99.50%, recall 0.709-0.712 (BENCHMARKS.md)
FAST_W = 2.0


def quicken(preset: Profile) -> Profile:
    """The `quick` profile of a preset: seconds on a CPU, on a slice of the data."""
    ae, dit = preset.ae, preset.dit
    if ae.arch == "dcae":  # the digitdreamer autoencoder is already tiny
        ae = dataclasses.replace(ae, widths=(4, 8, 16, 16, 16), latent_channels=4, disc_width=8)
        dit = dataclasses.replace(dit, latent_channels=4, width=32, depth=2, heads=2)
    else:
        dit = dataclasses.replace(dit, depth=2)
    slice_ = dict(train_limit=1024, test_limit=256, checkpoint_every=8, batch_size=64)
    return dataclasses.replace(
        preset,
        name=f"{preset.name}-quick",
        ae=dataclasses.replace(ae, disc_width=8),
        ae_train=dataclasses.replace(
            preset.ae_train,
            epochs=1,
            finetune_epochs=1,
            gan_start=min(preset.ae_train.gan_start, 8),
            **slice_,
        ),
        dit=dit,
        dit_train=dataclasses.replace(
            preset.dit_train,
            epochs=2,
            ema_decay=0.0,
            **slice_,  # 32 steps: raw weights
        ),
        sample=dataclasses.replace(preset.sample, steps=4),
        distill=dataclasses.replace(
            preset.distill,
            pairs=512,
            train_limit=1024,  # the pixel judge's slice (the 512 pairs are all trained on)
            teacher_steps=4,
            epochs=2,
            batch_size=64,
            checkpoint_every=8,
            # the quick profile distils a small decoder too, so that the smoke run covers it
            decoder_widths=(4, 4, 8, 16, 16) if ae.arch == "dcae" else (),
            decoder_blocks=(0, 0, 1, 0, 1),
            decoder_every=1,
        ),
    )


def fasten(preset: Profile) -> Profile:
    """The `fast` profile of a preset: the same models and data, fewer epochs; the GAN term starts at
    the same share of the (shorter) autoencoder run as in the reference schedule."""
    ae_train = preset.ae_train
    share = (FAST_AE_EPOCHS + FAST_FINETUNE) / max(1, ae_train.epochs + ae_train.finetune_epochs)
    return dataclasses.replace(
        preset,
        name=f"{preset.name}-fast",
        ae_train=dataclasses.replace(
            ae_train,
            epochs=FAST_AE_EPOCHS,
            finetune_epochs=FAST_FINETUNE,
            gan_start=round(ae_train.gan_start * share),
        ),
        dit_train=dataclasses.replace(
            preset.dit_train,
            epochs=FAST_DIT_EPOCHS,
            ema_decay=min(preset.dit_train.ema_decay, FAST_DIT_EMA),
        ),
        # no sampling decoder of its own: a first look needs no faster decoding, and its 10 short
        # epochs would train one for too few steps
        distill=dataclasses.replace(
            preset.distill,
            pairs=FAST_PAIRS,
            epochs=FAST_DISTILL_EPOCHS,
            decoder_widths=(),
            student_cfg=FAST_W if preset.distill.cfg_range else preset.distill.student_cfg,
        ),
    )


# ---- on a GPU ----------------------------------------------------------------------------------------
# A GPU runs the autoencoder's step at batch 128 far below its capacity (7,270 images/s on an H200, the
# card mostly idle: BENCHMARKS.md). There its batch is GPU_BATCH times the CPU's, at sqrt(GPU_BATCH)
# times the learning rate (the square-root rule for Adam: Malladi et al., "On the SDEs and Scaling
# Rules for Adaptive Gradient Algorithms", 2022), and the settings counted in steps (when the GAN
# starts, how often a checkpoint is written) divided by GPU_BATCH, so each falls at the same image.
# The DiT and the student keep their batches: their steps are a few small matrix products, and the
# DiT's own measurements found it wants more updates, not larger ones.
GPU_BATCH = 4


def on_gpu(preset: Profile, k: int = GPU_BATCH) -> Profile:
    """A profile's autoencoder schedule as a GPU trains it (the rule above); a --config file or a
    flag given after it still has the last word."""
    t = preset.ae_train
    return dataclasses.replace(
        preset,
        ae_train=dataclasses.replace(
            t,
            batch_size=t.batch_size * k,
            lr=t.lr * k**0.5,
            gan_start=t.gan_start // k,
            checkpoint_every=max(1, t.checkpoint_every // k),
        ),
    )


def get_profile(profile: str, preset: str = "default") -> Profile:
    """A preset's settings at the scale a profile names; a clear error for unknown names."""
    from ddream.errors import BadInput

    if preset not in PRESETS:
        raise BadInput(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    if profile not in PROFILES:
        raise BadInput(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    scale = {"reference": lambda p: p, "fast": fasten, "quick": quicken}[profile]
    return scale(PRESETS[preset])
