"""The one-step student's training task (train.py's `Task`): per batch, one step of the student and,
every `decoder_every`-th step, one of the small decoder that imitates the autoencoder's.

The student (a copy of the DiT, with the guidance scale w as an input) learns the one-step map from
(noise, class, w) to the teacher's latent at t = 1 (pseudo-Huber on the teacher's pairs); beside it,
by default, the class term (the stage's judge names the decoded one-step digits of the first
`class_rows` rows) and distribution matching (student_losses.py) on the first `dmd_rows` rows. Its
validation figure is what it is for: the share of its one-step digits, on held-out noise at its
default w, that the judge names as their class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ddream.artifacts import Latents
from ddream.checkpoint import flatten_optimizer, prefixed, restore_optimizer, split_prefix
from ddream.config import DistillConfig
from ddream.data import to_unit
from ddream.flow import guided_velocity, sample_ode
from ddream.judge import accuracy
from ddream.metrics import psnr
from ddream.models.autoencoder import Decoder
from ddream.models.dit import DiT
from ddream.render import grid
from ddream.runtime import autocast, rows_per_call, seeded, training_dtype
from ddream.student_losses import DistributionMatching, one_step_loss
from ddream.train import EMA, EMATask, adamw, scheduled_lr
from ddream.watch import SNAPSHOT_CLASSES, snapshot_noise

# the fake model of distribution matching starts learning the student's latents this share of the
# steps before the student's term starts
DMD_WARMUP = 0.1


@dataclass
class DistillTask(EMATask):
    """Student and, if asked, the small decoder, one step of each per batch."""

    student: DiT
    decoder: Decoder | None
    teacher_decoder: torch.nn.Module | None  # the autoencoder's, fused for inference
    stats: Latents
    cfg: DistillConfig
    pairs: dict[str, torch.Tensor]  # on the device
    val: dict[str, torch.Tensor]  # held-out noise and classes
    extra_latents: torch.Tensor  # standardised training latents for the decoder, on the device
    test_latents: torch.Tensor  # standardised test latents: the decoder's validation
    device: torch.device
    seed: int
    default_cfg: float  # the student's default guidance (its validation digits' scale)
    pixel_decoder: torch.nn.Module  # the autoencoder's, frozen: what the judge sees
    judge: torch.nn.Module
    teacher: DiT  # the DiT and its guided form, for distribution matching
    real: torch.nn.Module
    interval: tuple[float, float] = (0.0, 1.0)
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None  # the snapshots' decoder

    def __post_init__(self) -> None:
        self.n_train = len(self.pairs["labels"])
        self.batch_size = self.cfg.batch_size
        self.total_epochs = self.cfg.epochs
        self.total_steps = self.total_epochs * (self.n_train // self.batch_size)
        self.opt = adamw(self.student.parameters(), self.cfg.lr, weight_decay=0.0)
        self.dtype = training_dtype(self.device, "student step")  # scores stay exact
        self.ema = EMA(self.student, self.cfg.ema_decay)
        self.dmd = None
        if self.cfg.dmd > 0:
            self.dmd = DistributionMatching(self.teacher, self.real, self.interval, self.cfg.lr,
                                            self.device, tuple(self.cfg.dmd_t))  # fmt: skip
        self.opt_dec = None
        if self.decoder is not None:  # channels-last and bf16 where native: its step 1.71x
            self.decoder.to(memory_format=torch.channels_last)
            self.opt_dec = adamw(self.decoder.parameters(), self.cfg.decoder_lr)
        self.dec_dtype = training_dtype(self.device, "decoder step")

    def _set_lr(self, global_step: int) -> None:
        pairs = [(self.opt, self.cfg.lr)]
        if self.opt_dec is not None:
            pairs.append((self.opt_dec, self.cfg.decoder_lr))
        for opt, base in pairs:
            for group in opt.param_groups:
                group["lr"] = scheduled_lr("cosine", base, global_step, self.total_steps)

    def step(self, epoch: int, global_step: int, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        idx = idx.to(self.device)
        gen = seeded(self.seed, "distill-step", global_step)
        eps, x0, y = self.pairs["noise"][idx], self.pairs["latents"][idx], self.pairs["labels"][idx]
        w = self.pairs["cfg"][idx] if "cfg" in self.pairs else None
        t = torch.ones(len(idx), device=self.device)  # the one-step map itself: from t = 1
        self._set_lr(global_step)
        self.student.train()
        with autocast(self.device, self.dtype):
            v = self.student(eps, t, y, w)
        loss = one_step_loss(self.cfg.loss, v.float(), x0, eps)
        losses = {"loss": loss.detach()}
        landed = eps - v.float()  # the student's one-step latents (gradients to the student)
        if self.cfg.class_term > 0:  # the judge names the decoded digits of the first rows
            k = self.cfg.class_rows
            ce = F.cross_entropy(self.judge(self._pixels(landed[:k])), y[:k])
            loss, losses["class"] = loss + self.cfg.class_term * ce, ce.detach()
        share = global_step / self.total_steps
        fake_learns = self.dmd is not None and share >= self.cfg.dmd_start - DMD_WARMUP
        if fake_learns:  # the student's one-step latents, of the first dmd_rows rows
            k = self.cfg.dmd_rows or len(idx)
            x, yk, wk = landed[:k], y[:k], w[:k]
            if share >= self.cfg.dmd_start:
                dmd = self.dmd.student_term(x, yk, wk, gen)
                loss, losses["dmd"] = loss + self.cfg.dmd * dmd, dmd.detach()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.student.parameters(), 1.0)
        self.opt.step()
        self.ema.update(self.student)
        if fake_learns:
            losses["fake"] = self.dmd.fake_step(x, yk, wk, gen)
        if self.decoder is not None and global_step % self.cfg.decoder_every == 0:
            losses["dec"] = self._decoder_step(x0, gen)
        return losses

    def _pixels(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised latents -> the frozen autoencoder's pixels (what the judge sees)."""
        with autocast(self.device, self.dtype):
            return self.pixel_decoder(self.stats.unstandardise(z)).float()

    def _decoder_step(self, x0: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The small decoder imitates the autoencoder's on the teacher's latents and as many
        encoded training digits."""
        pick = torch.randint(0, len(self.extra_latents), (len(x0),), generator=gen)
        z = self.stats.unstandardise(torch.cat([x0, self.extra_latents[pick.to(self.device)]]))
        z = z.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), autocast(self.device, self.dec_dtype):
            target = self.teacher_decoder(z).float()
        target = target.clone()  # out of inference mode, so autograd may keep it
        self.decoder.train()
        with autocast(self.device, self.dec_dtype):
            out = self.decoder(z).float()
        loss = F.l1_loss(out, target) + F.mse_loss(out, target)
        self.opt_dec.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_dec.step()
        return loss.detach()

    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        """The share of the kept (EMA) student's one-step digits on held-out noise, at its default
        w, that the judge names as their class; the small decoder's PSNR against the autoencoder's
        decoder on the test latents."""
        student = self.ema_model()
        noise, labels = self.val["noise"], self.val["labels"]
        w = torch.full((len(labels),), self.default_cfg, device=self.device)
        with autocast(self.device):
            v = student(noise, torch.ones(len(labels), device=self.device), labels,
                        w if student.guidance_input else None).float()  # fmt: skip
        digits = self._pixels(noise - v)
        metrics = {"judge_acc": round(accuracy(self.judge, digits, labels, self.device), 4)}
        if self.decoder is not None:
            self.decoder.eval()
            z = self.stats.unstandardise(self.test_latents)
            rows, scores = rows_per_call("decoder", self.device), []  # slices: less memory
            for i in range(0, len(z), rows):
                with autocast(self.device):
                    ref = self.teacher_decoder(z[i : i + rows]).float()
                    out = self.decoder(z[i : i + rows]).float()
                scores.append(psnr(to_unit(out), to_unit(ref)))
            metrics["decoder_psnr"] = round(float(torch.cat(scores).mean()), 2)
        return metrics

    def ema_model(self) -> DiT:
        model = DiT(self.student.cfg, self.student.guidance_input).to(self.device)
        model.load_state_dict(self.ema.shadow)
        return model.eval()

    def state(self) -> dict[str, torch.Tensor]:
        opt, groups = flatten_optimizer(self.opt, "opt")
        tensors = {
            **prefixed(self.student.state_dict(), "model"),
            **self.ema.tensors(),
        }
        tensors.update(opt)
        self._groups = {"opt": groups}
        if self.decoder is not None:
            opt_dec, self._groups["opt_dec"] = flatten_optimizer(self.opt_dec, "opt_dec")
            tensors.update(prefixed(self.decoder.state_dict(), "decoder"))
            tensors.update(opt_dec)
        if self.dmd is not None:
            opt_fake, self._groups["opt_fake"] = flatten_optimizer(self.dmd.opt, "opt_fake")
            tensors.update(prefixed(self.dmd.fake.state_dict(), "fake"))
            tensors.update(opt_fake)
        return tensors

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        tensors = {k: v.to(self.device) for k, v in tensors.items()}
        self.student.load_state_dict(split_prefix(tensors, "model"))
        self.ema.restore(tensors, meta)
        restore_optimizer(self.opt, tensors, "opt", meta["groups"]["opt"])
        if self.decoder is not None:
            self.decoder.load_state_dict(split_prefix(tensors, "decoder"))
            restore_optimizer(self.opt_dec, tensors, "opt_dec", meta["groups"]["opt_dec"])
        if self.dmd is not None:
            self.dmd.fake.load_state_dict(split_prefix(tensors, "fake"))
            restore_optimizer(self.dmd.opt, tensors, "opt_fake", meta["groups"]["opt_fake"])

    @torch.inference_mode()
    def snapshot(self) -> np.ndarray | None:
        """The student (EMA weights, one step at its default guidance) on the DiT snapshots' noise."""
        if self.decode is None:
            return None
        noise, labels = snapshot_noise(self.seed, self.pairs["noise"].shape[1:], self.device)
        student = self.ema_model()
        scale = self.default_cfg if student.guidance_input else 1.0  # baked in: no scale to give
        cast = lambda: autocast(self.device)  # noqa: E731
        velocity = guided_velocity(student, labels, scale, None, len(labels), cast)
        z, _ = sample_ode(velocity, noise, 1)
        return grid(self.decode(z).cpu(), SNAPSHOT_CLASSES, scale=2)

    def describe(self, losses: dict[str, float], metrics: dict[str, float]) -> str:
        text = f"loss {losses.get('loss', float('nan')):.4f}  judge {metrics['judge_acc']:.1%}"
        if "decoder_psnr" in metrics:
            text += f"  decoder {metrics['decoder_psnr']:.2f} dB"
        return text
