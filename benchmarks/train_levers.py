"""Issue 35's levers, each alone: what a training step costs with and without it, in one process,
interleaved round by round, as the median over the rounds and a ratio to the step as ac6ede1 took it
(fp32 arithmetic, PyTorch's per-tensor AdamW).

1. The autoencoder's step (`AETask.step`: augmentation, losses, both optimisers), GAN off (its first
   16 epochs) and on (its last 6): bf16 autocast alone, the fused AdamW alone, both (today's
   default where the CPU has native bf16), and both with the decoder alone learning in the GAN
   phase (DC-AE's decoder-only phase, the default's GAN epochs on the augmented digits); and
   (`encoder`) the default's step with a lighter encoder, as LiteVAE suggests (not kept: PSNR).
2. The DiT's step (`DiTTask.step`): the same two levers, and the MLP's exact GELU (erf) in place
   of the tanh approximation ac6ede1's DiT had (`[dit] gelu`).
3. The teacher's pairs (`pairs.teacher_pairs`: 12 Heun steps, the dial's guidance, the DiT's own
   shape): fp32 against bf16, and bf16 with the exact GELU; and (`gelu`) the activation alone.
4. The distill stage's small decoder step (`DistillTask._decoder_step`: 512 latents, its target the
   autoencoder's fused decoding) and its judge's training (`judge.fit`, an epoch of 2,560 pictures):
   as ac6ede1 took them (fp32, contiguous memory) against channels-last in fp32 and in bf16.

    python benchmarks/train_levers.py [--steps 20] [--rounds 3] [--only ae encoder dit pairs distill gelu]

The images and latents are random: a step's cost does not depend on what the digits look like. On
a CPU without native bf16 (or under ONEDNN_MAX_CPU_ISA=AVX2) the bf16 rows emulate it and are slow:
ddream trains in fp32 there (`runtime.training_dtype`).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace

import torch
import torch.nn.functional as F

import ddream.judge as judge_mod
import ddream.pairs as pairs_mod
from ddream.artifacts import Latents
from ddream.config import DistillConfig, DiTConfig, DiTTrainConfig
from ddream.data import Split
from ddream.models.autoencoder import AutoEncoder, Decoder
from ddream.models.discriminator import PatchDiscriminator
from ddream.models.dit import DiT
from ddream.models.fused_decoder import inference_decoder
from ddream.models.judge import PixelJudge
from ddream.presets import PRESETS
from ddream.runtime import native_bf16
from ddream.stages.train_ae import AETask
from ddream.stages.train_dit import DiTTask
from ddream.student import DistillTask
from ddream.train import adamw

NO_GAN = 10**9  # a gan_start no run reaches
PARTS = ("ae", "encoder", "dit", "pairs", "distill", "gelu")
CPU = torch.device("cpu")


def plain_adamw(model: torch.nn.Module, opt: torch.optim.Optimizer) -> torch.optim.AdamW:
    """The optimiser as ac6ede1 built it: the same settings, PyTorch's default (per-tensor) loop."""
    group = {k: v for k, v in opt.param_groups[0].items() if k in ("lr", "betas", "weight_decay")}
    return torch.optim.AdamW(model.parameters(), **group)


def ae_task(split: Split, *, bf16: bool, fused: bool, gan: bool, decoder_only: bool = False,
            lighter: int = 0):  # fmt: skip
    """The step of an augmented epoch, the GAN term on or off; `decoder_only`: the decoder alone
    learning, as the GAN phase's augmented epochs now train it ([ae_train] gan_decoder_only);
    `lighter`: the encoder without its residual blocks at 16x16 (1) or at 16x16 and 8x8 (2), as
    benchmarks/patches/encoder-blocks.patch trains it."""
    profile = PRESETS["default"]
    torch.manual_seed(0)
    cfg = dataclasses.replace(
        profile.ae_train, gan_start=0 if gan else NO_GAN, gan_decoder_only=decoder_only
    )
    ae, disc = AutoEncoder(profile.ae), PatchDiscriminator(profile.ae.disc_width)
    for stage in ae.encoder.stages[:lighter]:  # [ResBlock, DownBlock] -> [DownBlock]
        del stage[0]
    task = AETask(ae, disc, cfg, split, split, CPU, 0)
    task.dtype = "bf16" if bf16 else "fp32"
    if not fused:
        task.opt_ae, task.opt_d = plain_adamw(ae, task.opt_ae), plain_adamw(disc, task.opt_d)
    bs = task.batch_size
    return lambda i: task.step(0, i, torch.arange(i * bs, (i + 1) * bs) % len(split)), bs


def dit_task(latents: torch.Tensor, labels: torch.Tensor, *, bf16: bool, fused: bool,
             gelu: str = "tanh"):  # fmt: skip
    torch.manual_seed(0)
    model = DiT(DiTConfig(gelu=gelu))
    task = DiTTask(model, DiTTrainConfig(), latents, labels, latents[:500], labels[:500], CPU, 0)
    task.dtype = "bf16" if bf16 else "fp32"
    if not fused:
        task.opt = plain_adamw(model, task.opt)
    bs = task.batch_size
    return lambda i: task.step(0, i, torch.arange(i * bs, (i + 1) * bs) % len(labels)), bs


def pairs_draw(teacher: DiT, n: int, *, bf16: bool):
    cfg = DistillConfig()

    def draw(i: int) -> None:
        pairs_mod.training_dtype = lambda _d, _w: "bf16" if bf16 else "fp32"
        pairs_mod.teacher_pairs(teacher, n, cfg, tuple(cfg.cfg_range), i, "bench", CPU,
                                interval=tuple(cfg.teacher_cfg_interval))  # fmt: skip

    return draw, n


def decoder_step(*, old: bool, bf16: bool):
    """The distill stage's small decoder step on 512 latents: today's code (`_decoder_step`,
    channels-last) in fp32 or bf16, or as ac6ede1 ran it (`old`: fp32, contiguous memory)."""
    profile = PRESETS["default"]
    torch.manual_seed(0)
    ae = AutoEncoder(profile.ae)
    small = dataclasses.replace(
        profile.ae, widths=profile.distill.decoder_widths, blocks=profile.distill.decoder_blocks
    )
    decoder = Decoder(small)
    extra = torch.randn(256 * 8, 16, 2, 2)
    stats = Latents(extra, torch.zeros(len(extra)), torch.zeros(16), torch.ones(16), "")
    task = SimpleNamespace(
        stats=stats, extra_latents=extra, teacher_decoder=inference_decoder(ae.decoder, CPU),
        decoder=decoder, device=CPU, dtype="fp32", dec_dtype="bf16" if bf16 else "fp32",
        opt_dec=adamw(decoder.parameters(), profile.distill.decoder_lr),
    )  # fmt: skip
    if not old:
        decoder.to(memory_format=torch.channels_last)

    def step(i: int) -> None:
        gen = torch.Generator().manual_seed(i)
        x0 = extra[(i * 256) % len(extra) :][:256]
        (old_decoder_step if old else DistillTask._decoder_step)(task, x0, gen)

    return step, 512


def old_decoder_step(task, x0: torch.Tensor, gen: torch.Generator) -> None:
    """`DistillTask._decoder_step` as ac6ede1 wrote it: fp32 (the student step's dtype) and the
    latents in contiguous memory."""
    pick = torch.randint(0, len(task.extra_latents), (len(x0),), generator=gen)
    z = task.stats.unstandardise(torch.cat([x0, task.extra_latents[pick]]))
    with torch.no_grad():
        target = task.teacher_decoder(z).float().clone()
    out = task.decoder(z).float()
    loss = F.l1_loss(out, target) + F.mse_loss(out, target)
    task.opt_dec.zero_grad(set_to_none=True)
    loss.backward()
    task.opt_dec.step()


def judge_epoch(pictures: torch.Tensor, labels: torch.Tensor, *, old: bool, bf16: bool):
    """An epoch of the judge's training: today's `judge.fit` (channels-last) in fp32 or bf16, or
    ac6ede1's loop (`old`: fp32, contiguous memory; its seeded draws left out)."""

    def epoch(i: int) -> None:
        if old:
            torch.manual_seed(i)
            model = PixelJudge(10)
            opt = adamw(model.parameters(), 1e-3, weight_decay=1e-2)
            for k in range(0, len(labels) - 255, 256):
                loss = F.cross_entropy(model(pictures[k : k + 256]), labels[k : k + 256])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            return
        judge_mod.training_dtype = lambda _d, _w: "bf16" if bf16 else "fp32"
        judge_mod.fit(pictures, labels, 10, 1, i, CPU)

    return epoch, len(labels)


def random_teacher(gelu: str) -> DiT:
    """A teacher that is not the identity (random adaLN weights), with that GELU; the same weights
    for either."""
    torch.manual_seed(0)
    teacher = DiT(DiTConfig(gelu=gelu), guidance_input=False).eval()
    for p in teacher.parameters():
        torch.nn.init.normal_(p, std=0.02)
    return teacher


def rate(fn: Callable[[int], object], per_call: int, calls: int, start: int) -> float:
    t0 = time.perf_counter()
    for i in range(start, start + calls):
        fn(i)
    return calls * per_call / (time.perf_counter() - t0)


def table(title: str, unit: str, variants: dict, calls: int, rounds: int, base: str) -> None:
    for fn, per_call in variants.values():
        rate(fn, per_call, 2, 0)  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        for name, (fn, per_call) in variants.items():
            rates[name].append(rate(fn, per_call, calls, 2 + r * calls))
    ref = statistics.median(rates[base])
    print(f"\n**{title}**\n\n| variant | {unit} (median) | rounds | ratio to the first row |")
    print("| --- | --- | --- | --- |")
    for name, r in rates.items():
        med = statistics.median(r)
        print(f"| {name} | {med:,.0f} | {', '.join(f'{v:,.0f}' for v in r)} | {med / ref:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=2000, help="teacher pairs per timed draw")
    ap.add_argument("--only", nargs="+", choices=PARTS, default=PARTS, help="which tables")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {native_bf16(CPU)}")  # fmt: skip

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (128 * 40, 28, 28), dtype=torch.uint8, generator=gen)
    split = Split(images, torch.zeros(len(images), dtype=torch.long))
    for gan in (False, True) if "ae" in args.only else ():
        v = {
            "fp32, per-tensor AdamW (ac6ede1)": ae_task(split, bf16=False, fused=False, gan=gan),
            "bf16 autocast alone": ae_task(split, bf16=True, fused=False, gan=gan),
            "fused AdamW alone": ae_task(split, bf16=False, fused=True, gan=gan),
            "bf16 + fused AdamW (the default)": ae_task(split, bf16=True, fused=True, gan=gan),
        }
        if gan:
            v["bf16 + fused, the decoder alone learning"] = ae_task(
                split, bf16=True, fused=True, gan=gan, decoder_only=True
            )
        title = f"The autoencoder's step, GAN {'on' if gan else 'off'} (batch 128)"
        table(title, "images/s", v, args.steps, args.rounds, "fp32, per-tensor AdamW (ac6ede1)")
    if "encoder" in args.only:
        v = {
            "the default's encoder": ae_task(split, bf16=True, fused=True, gan=False),
            "no 16x16 block": ae_task(split, bf16=True, fused=True, gan=False, lighter=1),
            "no 16x16 or 8x8 block": ae_task(split, bf16=True, fused=True, gan=False, lighter=2),
        }
        table("The autoencoder's step with a lighter encoder (GAN off, the default's levers)",
              "images/s", v, args.steps, args.rounds, next(iter(v)))  # fmt: skip

    latents = torch.randn(256 * 60, 16, 2, 2, generator=gen)
    labels = torch.randint(0, 10, (len(latents),), generator=gen)
    if "dit" in args.only:
        dit_table(latents, labels, args)
    if "pairs" in args.only:
        pairs_table(args)
    if "distill" in args.only:
        distill_tables(gen, args)
    if "gelu" in args.only:
        gelu_table(gen, args)


def gelu_table(gen: torch.Generator, args: argparse.Namespace) -> None:
    """The activation alone, on the shape of the DiT's hidden layer in the teacher's pairs."""
    x = torch.randn(2000, 1, 640, generator=gen)
    v = {}
    for dtype in (torch.float32, torch.bfloat16):
        for form in ("tanh", "none"):
            name = f"{'tanh' if form == 'tanh' else 'exact'}, {str(dtype)[6:]}"
            v[name] = (lambda i, xx=x.to(dtype), f=form: F.gelu(xx, approximate=f), 1)
    table("GELU on (2000, 1, 640)", "calls/s", v, args.steps * 5, args.rounds, next(iter(v)))


def dit_table(latents: torch.Tensor, labels: torch.Tensor, args: argparse.Namespace) -> None:
    v = {
        "fp32, per-tensor AdamW (ac6ede1)": dit_task(latents, labels, bf16=False, fused=False),
        "bf16 autocast alone": dit_task(latents, labels, bf16=True, fused=False),
        "fused AdamW alone": dit_task(latents, labels, bf16=False, fused=True),
        "bf16 + fused AdamW": dit_task(latents, labels, bf16=True, fused=True),
        "fused AdamW, exact GELU (the default)": dit_task(
            latents, labels, bf16=False, fused=True, gelu="exact"
        ),
    }
    table("The DiT's step", "latents/s", v, args.steps * 3, args.rounds, next(iter(v)))


def pairs_table(args: argparse.Namespace) -> None:
    teachers = {gelu: random_teacher(gelu) for gelu in ("tanh", "exact")}
    v = {
        "fp32 (ac6ede1)": pairs_draw(teachers["tanh"], args.pairs, bf16=False),
        "bf16": pairs_draw(teachers["tanh"], args.pairs, bf16=True),
        "bf16, exact GELU (the default)": pairs_draw(teachers["exact"], args.pairs, bf16=True),
    }
    with torch.inference_mode():
        table("The teacher's pairs (12 Heun steps, guided)", "pairs/s", v, 1, args.rounds,
              "fp32 (ac6ede1)")  # fmt: skip


def distill_tables(gen: torch.Generator, args: argparse.Namespace) -> None:
    v = {
        "fp32, contiguous (ac6ede1)": decoder_step(old=True, bf16=False),
        "fp32, channels-last": decoder_step(old=False, bf16=False),
        "bf16, channels-last (the default)": decoder_step(old=False, bf16=True),
    }
    table("The distill stage's small decoder step (512 latents)", "latents/s", v, args.steps,
          args.rounds, next(iter(v)))  # fmt: skip
    pictures = torch.rand(2560, 1, 32, 32, generator=gen) * 2 - 1
    classes = torch.randint(0, 10, (len(pictures),), generator=gen)
    v = {
        "fp32, contiguous (ac6ede1)": judge_epoch(pictures, classes, old=True, bf16=False),
        "fp32, channels-last": judge_epoch(pictures, classes, old=False, bf16=False),
        "bf16, channels-last (the default)": judge_epoch(pictures, classes, old=False, bf16=True),
    }
    table("The distill stage's judge (an epoch of 2,560 pictures)", "pictures/s", v, 2,
          args.rounds, next(iter(v)))  # fmt: skip


if __name__ == "__main__":
    main()
