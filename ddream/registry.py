"""The one table of ddream's stages: each one's name in state.json, the command that runs it, the module
that does it, every file it makes (and the kind its metadata names), the (stage, output) it is made
from, the settings tables its record keeps, how its record reads in `ddream status`, and what its work
costs on the development machine. state, pipeline, status, the loaders and the exporter read it:
adding a stage is a row here and its module under ddream/stages/."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Output:
    """A file a stage makes: its name in the record, its path in the state dir, its metadata kind."""

    name: str
    path: str
    kind: str
    exported: bool = (
        True  # carried by `ddream export` (the latents are not: they train, not sample)
    )
    optional: bool = False  # a run may leave it out (the DiT's guide, the student's decoder)


@dataclass(frozen=True)
class Stage:
    name: str  # in state.json
    command: str  # the `ddream` command that runs it alone
    module: str  # ddream.stages.<module>.run_stage runs it inside `ddream all`
    outputs: tuple[Output, ...]  # every file it makes
    upstream: tuple[str, str] | None  # the (stage, output) it is made from
    tables: tuple[tuple[str, str], ...]  # settings tables its record keeps: (table, key in config)
    metrics: Callable[[dict[str, Any]], str]  # its last metrics as `ddream status` shows them
    cost: Callable[[Any], float]  # a Profile's work, in development-machine seconds
    # its held-out epoch metric (plotted, and shown with each epoch) and whether max or min is better
    metric: tuple[str, str] | None = None
    names_best: bool = True  # whether `ddream status` names a best epoch by it (the model kept)
    title: str = ""  # its name in pictures (`ddream plot`, the page)

    def describe(self, metrics: dict[str, Any]) -> str:
        """The status line's metrics; empty for metrics missing or of the wrong type (hand-edited)."""
        try:
            return self.metrics(metrics)
        except (KeyError, TypeError, ValueError):
            return ""


# Seconds per unit of work on the development machine (2-core Intel Xeon with AMX, torch 2.14.1),
# measured by a whole default `ddream all` at 72bf2df on 2026-12-07 (BENCHMARKS.md, its record's
# table of seconds): autoencoder 609 s for 22 epochs of 60,000 (in bf16), encode 7 s for 70,000
# digits, DiT 130 s for 10 epochs; distill 36 s for 60,000 12-step teacher pairs, 31 s for the pixel
# judge's 2 epochs, 191 s for 10 epochs; start-up, pictures and plots 3.5 s (pipeline.PICTURES).
# Since then (01ee06e, the same day): the GAN phase's 4 augmented epochs train the decoder alone,
# ~10 s shorter each (568 s for the autoencoder), and the judge trains in bf16 (16 s). At 79485f3
# the DiT's exact GELU and rarer checkpoints: DiT 121 s, the pairs 30 s, distill's epochs 174 s.
# Any other machine is measured as it goes: progress.Plan scales the stages still to come by how this
# one compares.
def _images(p) -> int:
    return p.ae_train.train_limit or 60_000  # an MNIST-like training split


def _distill_cost(p) -> float:
    """The teacher's pairs, the judge (on the decoded training latents), and the student's epochs."""
    d = p.distill
    trained = min(d.train_limit or d.pairs, d.pairs)
    pairs = d.pairs * d.teacher_steps * 30 / (61_000 * 12)  # measured with 1,000 more
    judged = min(d.train_limit or _images(p), _images(p))
    judge = d.judge_epochs * judged * 16 / (2 * 60_000)
    return pairs + judge + d.epochs * trained * 174 / (10 * 60_000)


def _distill_metrics(m: dict[str, Any]) -> str:
    if "judge_acc" not in m:  # a student of 0.1.0: its figure was the 1-step error
        return f"1-step mse {m['val_mse']:.4f}"
    text = f"judge {m['judge_acc']:.1%} of its digits"
    return text + (f", decoder {m['decoder_psnr']:.2f} dB" if "decoder_psnr" in m else "")


STAGE_TABLE = (
    Stage(
        "ae", "train-ae", "train_ae",
        (Output("model", "ae/model.safetensors", "ddream-ae"),),
        None,
        (("ae", "model"), ("ae_train", "train")),
        lambda m: f"test PSNR {m['test_psnr']:.2f} dB",
        lambda p: (p.ae_train.epochs + p.ae_train.finetune_epochs) * _images(p) * 568 / (22 * 60_000),
        ("test_psnr", "max"),
        title="autoencoder",
    ),
    Stage(
        "encode", "encode", "encode",
        (Output("train", "latents/train.safetensors", "ddream-latents", exported=False),
         Output("test", "latents/test.safetensors", "ddream-latents", exported=False)),
        ("ae", "model"),
        (),
        lambda m: f"{m['train']} + {m['test']} latents {tuple(m['latent_shape'])}",
        lambda p: (_images(p) + (p.ae_train.test_limit or 10_000)) * 7 / 70_000,
    ),
    Stage(
        "dit", "train-dit", "train_dit",
        (Output("model", "dit/model.safetensors", "ddream-dit"),
         Output("guide", "dit/guide.safetensors", "ddream-dit", optional=True)),
        ("encode", "train"),
        (("dit", "model"), ("dit_train", "train"), ("sample", "sample")),
        lambda m: f"val loss {m['val_loss']:.4f}",
        lambda p: p.dit_train.epochs * (p.dit_train.train_limit or _images(p)) * 121 / (10 * 60_000),
        ("val_loss", "min"),
        title="DiT (the teacher)",
    ),
    Stage(
        "distill", "distill", "distill",
        (Output("model", "distill/student.safetensors", "ddream-student"),
         Output("decoder", "distill/decoder.safetensors", "ddream-decoder", optional=True)),
        ("dit", "model"),
        (("distill", "distill"),),
        _distill_metrics,
        _distill_cost,
        ("judge_acc", "max"),
        names_best=False,  # the model kept is the last epoch's: its figure rises or falls by design
        title="one-step student",
    ),
)  # fmt: skip
STAGE = {s.name: s for s in STAGE_TABLE}
STAGES = tuple(STAGE)
OUTPUT_KINDS = {(s.name, o.name): o.kind for s in STAGE_TABLE for o in s.outputs}
