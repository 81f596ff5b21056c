"""Settings for every stage as plain dataclasses, the named profiles, and their JSON round-trip."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AEConfig:
    """The F-16 autoencoder: 32x32x1 -> 2x2xC, four DC-AE down/up-sampling steps."""

    widths: tuple[int, ...] = (8, 16, 32, 64, 64)  # channels at 32, 16, 8, 4, 2 pixels
    blocks: tuple[int, ...] = (0, 0, 1, 1, 1)  # residual blocks at each resolution
    latent_channels: int = 8
    disc_width: int = 16  # patch discriminator's first width


@dataclass(frozen=True)
class AETrainConfig:
    """How train-ae runs: augmented epochs, then fine-tune epochs on the original digits."""

    epochs: int = 20
    finetune_epochs: int = 2
    batch_size: int = 128
    lr: float = 2e-3
    gan_weight: float = 0.05  # weight of the generator's adversarial term
    gan_start: int = 2000  # optimiser step at which the discriminator and GAN term start
    rotate: float = 15.0  # degrees, +-
    translate: float = 0.1  # fraction of the 28-pixel digit, +-
    scale: tuple[float, float] = (0.85, 1.15)
    shear: float = 10.0  # degrees, +-
    train_limit: int = 0  # use only the first N training images (0 = all)
    test_limit: int = 0  # evaluate on the first N test images (0 = all)
    checkpoint_every: int = 200  # steps between resume checkpoints (and at every epoch end)


@dataclass(frozen=True)
class DiTConfig:
    """A small class-conditional DiT over the 2x2 latent, conditioned through adaLN-Zero."""

    latent_channels: int = 8
    latent_size: int = 2
    patch_size: int = 1  # 1 gives 4 tokens; 2 gives one token
    width: int = 128
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    num_classes: int = 10
    class_dropout: float = 0.1  # share of labels replaced by the null class in training


@dataclass(frozen=True)
class DiTTrainConfig:
    """How train-dit runs: rectified flow on standardised latents, with an EMA of the weights."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    logit_normal: bool = True  # t = sigmoid(N(0,1)) rather than uniform
    train_limit: int = 0
    test_limit: int = 0
    checkpoint_every: int = 200


@dataclass(frozen=True)
class SampleConfig:
    """Defaults for sampling."""

    steps: int = 12
    cfg: float = 1.5
    solver: str = "euler"


@dataclass(frozen=True)
class Profile:
    """Every stage's settings under one name."""

    name: str
    ae: AEConfig = field(default_factory=AEConfig)
    ae_train: AETrainConfig = field(default_factory=AETrainConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    dit_train: DiTTrainConfig = field(default_factory=DiTTrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)


PROFILES: dict[str, Profile] = {
    # The reference schedule: 20 augmented + 2 fine-tune AE epochs, 10 DiT epochs, full MNIST.
    "reference": Profile(name="reference"),
    # Seconds on a CPU: a tiny model on a slice of the data, for smoke tests and demos.
    "quick": Profile(
        name="quick",
        ae=AEConfig(
            widths=(4, 8, 16, 16, 16), blocks=(0, 0, 1, 1, 1), latent_channels=4, disc_width=8
        ),
        ae_train=AETrainConfig(
            epochs=1,
            finetune_epochs=1,
            batch_size=64,
            gan_start=8,
            train_limit=1024,
            test_limit=256,
            checkpoint_every=8,
        ),
        dit=DiTConfig(latent_channels=4, width=32, depth=2, heads=2),
        dit_train=DiTTrainConfig(
            epochs=2,
            batch_size=64,
            ema_decay=0.9,
            train_limit=1024,
            test_limit=256,
            checkpoint_every=8,
        ),
        sample=SampleConfig(steps=4),
    ),
}


def get_profile(name: str) -> Profile:
    """The profile of that name, or a clear error naming the ones there are."""
    from ddream.errors import BadInput

    try:
        return PROFILES[name]
    except KeyError:
        raise BadInput(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}") from None


def with_overrides(cfg: Any, **overrides: Any) -> Any:
    """A copy of a config dataclass with the given fields replaced; None means 'keep'."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(cfg, **changes) if changes else cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as JSON-ready data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """A config rebuilt from `to_dict` output; lists become tuples where the field is a tuple."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key in known:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


def fingerprint(data: Any) -> str:
    """A short, stable hash of JSON-ready data (configs, input descriptions)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
