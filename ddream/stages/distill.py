"""`ddream distill`: the trained models made fast for sampling.

- **Student**: the guided teacher (the DiT with classifier-free guidance, autoguidance when train-dit
  kept its early weights (models/dit.py AutoGuided), and classifier guidance by a small classifier
  of the training latents trained here first (models/latent_classifier.py); integrated with Heun)
  turns (noise, class)
  into latents, each pair at its own guidance scale w over `cfg_range`; a copy of the
  DiT, with w as an input (embedded like t, added to the conditioning, zero-initialised so that it
  starts as the teacher), learns the straight path between each pair, as in one round of reflow
  (Liu et al. 2022; Lee et al. 2024): the student has no null-class row, and one Euler step from
  t = 1 at w lands on the teacher's digit at w (`cfg_range = ()`: one scale, baked in, as before). Which t it trains on
  is a setting: `one` (t = 1 only, i.e. regressing the one-step map itself, as in Luhman & Luhman's
  knowledge distillation; the default, chosen by FID) or `ushape` (reflow's U-shaped t, which
  serves 2 steps and more).
  Beside that regression, by default: a class term (a small CNN, trained here on the autoencoder's
  decodings of the training latents, names the decoded one-step digits of a few rows a batch) and
  distribution matching (student_losses.py DistributionMatching) on a few rows more.
- **Decoder** (`decoder_widths`, `decoder_blocks`; on by default): a cheaper DC-AE decoder that
  imitates the autoencoder's decoder on latents (the teacher's pairs and the encoded training
  digits), so the DiT, the student and the encoder stay valid. It starts from the trained decoder's
  weights wherever a tensor fits (the default drops the 4x4 residual block) and learns on every
  `decoder_every`-th student step. Sampling uses it; `reconstruct` keeps the autoencoder's.

The pairs are drawn once per (teacher, teacher settings) and kept beside the resume checkpoint, so a
resumed run trains on the same pairs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ddream.artifacts import Latents, load_ae, load_dit, load_guide, load_latents
from ddream.checkpoint import (
    flatten_optimizer,
    prefixed,
    restore_optimizer,
    split_prefix,
)
from ddream.config import DistillConfig, LogConfig, fingerprint, to_dict, validate
from ddream.data import to_unit
from ddream.flow import guided_velocity, sample_ode
from ddream.metrics import psnr
from ddream.models.autoencoder import Decoder, decoder_config, warm_start
from ddream.models.dit import AutoGuided, DiT
from ddream.models.fused_decoder import inference_decoder
from ddream.models.latent_classifier import ClassifierGuided
from ddream.pairs import (
    distill_t,
    latent_classifier,
    load_or_draw_pairs,
    pairs_key,
    pixel_classifier,
    teacher_pairs,
)
from ddream.render import grid
from ddream.runtime import autocast, rows_per_call, seeded, training_dtype
from ddream.stages.record import PipelineRun, StageRun
from ddream.state import StateDir
from ddream.student_losses import Adversary, DistributionMatching, one_step_loss
from ddream.train import EMA, adamw, scheduled_lr
from ddream.watch import SNAPSHOT_CLASSES, latent_decoder, snapshot_noise

STAGE = "distill"
VALIDATION_PAIRS = 1000
# the fake model of distribution matching starts learning the student's latents this share of the
# steps before the student's term starts
DMD_WARMUP = 0.1
# settings added after students were released, each group under the switches that turn it on: while
# one is off they stay out of the stage's fingerprint, so those students stay up to date
LATER_SETTINGS = {
    ("teacher_classifier_guidance",): ("teacher_classifier_guidance", "classifier_epochs"),
    ("dmd",): ("dmd", "dmd_start", "dmd_t", "dmd_rows"),
    ("classifier_loss",): ("classifier_loss", "classifier_epochs"),
    ("classifier_loss", "classifier_rows"): ("classifier_rows", "pixel_classifier_epochs"),
}


@dataclass
class DistillTask:
    """Student (reflow on the pairs) and, if asked, the small decoder, one step of each per batch."""

    student: DiT
    decoder: Decoder | None
    teacher_decoder: torch.nn.Module | None
    stats: Latents
    cfg: DistillConfig
    pairs: dict[str, torch.Tensor]  # on the device
    val: dict[str, torch.Tensor]
    extra_latents: torch.Tensor  # standardised training latents for the decoder, on the device
    test_latents: torch.Tensor  # standardised test latents: the decoder's validation
    device: torch.device
    seed: int
    default_cfg: float = 1.0  # the student's default guidance (its validation pairs' scale)
    pixel_decoder: torch.nn.Module | None = None  # the autoencoder's, frozen (loss "pixel")
    real_labels: torch.Tensor | None = None  # the classes of extra_latents (the adversarial term)
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None  # the snapshots' decoder
    teacher: DiT | None = None  # the DiT and its guided form, for distribution matching
    real: torch.nn.Module | None = None
    interval: tuple[float, float] = (0.0, 1.0)
    classifier: torch.nn.Module | None = None  # the latent classifier (classifier_loss)
    pixel_classifier: torch.nn.Module | None = None  # the class term's in pixels (classifier_rows)

    def __post_init__(self) -> None:
        self.n_train = len(self.pairs["labels"])
        self.batch_size = self.cfg.batch_size
        self.total_epochs = self.cfg.epochs
        self.total_steps = self.total_epochs * (self.n_train // self.batch_size)
        self.opt = adamw(self.student.parameters(), self.cfg.lr, weight_decay=0.0)
        self.dtype = training_dtype(self.device, "student step")  # scores stay exact
        self.ema = EMA(self.student, self.cfg.ema_decay)
        self.adversary = None
        if self.cfg.adversarial > 0:
            dim = self.pairs["noise"][0].numel()
            self.adversary = Adversary(
                dim, self.student.cfg.num_classes, self.cfg.adversarial_lr, self.device
            )
        self.dmd = None
        if self.cfg.dmd > 0:
            self.dmd = DistributionMatching(
                self.teacher,
                self.real,
                self.interval,
                self.cfg.lr,
                self.device,
                tuple(self.cfg.dmd_t),
            )
        self.opt_dec = (
            adamw(self.decoder.parameters(), self.cfg.decoder_lr)
            if self.decoder is not None
            else None
        )

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
        t = distill_t(self.cfg.t_dist, len(idx), gen).to(self.device)
        self._set_lr(global_step)
        self.student.train()
        tb = t.view(-1, 1, 1, 1)
        xt = (1 - tb) * x0 + tb * eps
        with autocast(self.device, self.dtype):
            v = self.student(xt, t, y, w)
        loss = one_step_loss(self.cfg.loss, v.float(), x0, eps, xt, tb, self._pixels)
        losses = {"loss": loss.detach()}
        landed = xt - tb * v.float()  # the student's one-step latents (gradients to the student)
        if self.cfg.classifier_loss > 0:  # named as their class: decoded (first rows) or latent
            if self.pixel_classifier is not None:
                k = self.cfg.classifier_rows
                logits, want = self.pixel_classifier(self._pixels(landed[:k])), y[:k]
            else:
                logits, want = self.classifier(landed), y
            ce = F.cross_entropy(logits, want)
            loss, losses["class"] = loss + self.cfg.classifier_loss * ce, ce.detach()
        if self.adversary is not None:  # the unguided end of the dial against the real latents
            fake, y_fake = self.adversary.unguided(self.student, eps.shape, gen)
            adv = self.adversary.student_term(fake, y_fake)
            loss, losses["adv"] = loss + self.cfg.adversarial * adv, adv.detach()
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
        if self.adversary is not None:
            pick = torch.randint(0, len(self.extra_latents), (len(idx),), generator=gen)
            pick = pick.to(self.device)
            losses["critic"] = self.adversary.critic_step(
                fake, self.extra_latents[pick], y_fake, self.real_labels[pick]
            )
        if fake_learns:
            losses["fake"] = self.dmd.fake_step(x, yk, wk, gen)
        if self.decoder is not None and global_step % self.cfg.decoder_every == 0:
            losses["dec"] = self._decoder_step(x0, gen)
        return losses

    def _pixels(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised latents -> the frozen autoencoder's pixels (the "pixel" objective)."""
        with autocast(self.device, self.dtype):
            return self.pixel_decoder(self.stats.unstandardise(z)).float()

    def _decoder_step(self, x0: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The small decoder imitates the autoencoder's on the teacher's latents and as many
        encoded training digits."""
        pick = torch.randint(0, len(self.extra_latents), (len(x0),), generator=gen)
        z = self.stats.unstandardise(torch.cat([x0, self.extra_latents[pick.to(self.device)]]))
        with torch.no_grad(), autocast(self.device, self.dtype):
            target = self.teacher_decoder(z).float()
        target = target.clone()  # out of inference mode, so autograd may keep it
        self.decoder.train()
        with autocast(self.device, self.dtype):
            out = self.decoder(z).float()
        loss = F.l1_loss(out, target) + F.mse_loss(out, target)
        self.opt_dec.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_dec.step()
        return loss.detach()

    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        """One-step latent error against the teacher on held-out pairs; the small decoder's PSNR
        against the autoencoder's decoder on the test latents."""
        student = self.ema_model()
        w = None
        if student.guidance_input:  # the validation pairs are drawn at the student's default w
            w = torch.full((len(self.val["labels"]),), self.default_cfg, device=self.device)
        with autocast(self.device):
            z, _ = sample_ode(
                lambda x, t: student(x, t, self.val["labels"], w).float(), self.val["noise"], 1
            )
        metrics = {"val_mse": round(float(F.mse_loss(z.float(), self.val["latents"])), 5)}
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
            **prefixed(self.ema.shadow, "ema"),
        }
        tensors.update(opt)
        self._groups = {"opt": groups}
        if self.decoder is not None:
            opt_dec, self._groups["opt_dec"] = flatten_optimizer(self.opt_dec, "opt_dec")
            tensors.update(prefixed(self.decoder.state_dict(), "decoder"))
            tensors.update(opt_dec)
        if self.adversary is not None:
            opt_adv, self._groups["opt_adv"] = flatten_optimizer(self.adversary.opt, "opt_adv")
            tensors.update(prefixed(self.adversary.critic.state_dict(), "critic"))
            tensors.update(opt_adv)
        if self.dmd is not None:
            opt_fake, self._groups["opt_fake"] = flatten_optimizer(self.dmd.opt, "opt_fake")
            tensors.update(prefixed(self.dmd.fake.state_dict(), "fake"))
            tensors.update(opt_fake)
        return tensors

    def meta(self) -> dict[str, Any]:
        return {"groups": self._groups, "ema_updates": self.ema.updates}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        tensors = {k: v.to(self.device) for k, v in tensors.items()}
        self.student.load_state_dict(split_prefix(tensors, "model"))
        self.ema.shadow = split_prefix(tensors, "ema")
        self.ema.updates = meta["ema_updates"]
        restore_optimizer(self.opt, tensors, "opt", meta["groups"]["opt"])
        if self.decoder is not None:
            self.decoder.load_state_dict(split_prefix(tensors, "decoder"))
            restore_optimizer(self.opt_dec, tensors, "opt_dec", meta["groups"]["opt_dec"])
        if self.adversary is not None:
            self.adversary.critic.load_state_dict(split_prefix(tensors, "critic"))
            restore_optimizer(self.adversary.opt, tensors, "opt_adv", meta["groups"]["opt_adv"])
        if self.dmd is not None:
            self.dmd.fake.load_state_dict(split_prefix(tensors, "fake"))
            restore_optimizer(self.dmd.opt, tensors, "opt_fake", meta["groups"]["opt_fake"])

    @torch.inference_mode()
    def snapshot(self) -> np.ndarray | None:
        """The student (EMA weights, its default steps and guidance) on the DiT snapshots' noise."""
        if self.decode is None:
            return None
        noise, labels = snapshot_noise(self.seed, self.pairs["noise"].shape[1:], self.device)
        student = self.ema_model()
        scale = self.default_cfg if student.guidance_input else 1.0  # baked in: no scale to give
        cast = lambda: autocast(self.device)  # noqa: E731
        velocity = guided_velocity(student, labels, scale, None, len(labels), cast)
        z, _ = sample_ode(velocity, noise, self.cfg.student_steps)
        return grid(self.decode(z).cpu(), SNAPSHOT_CLASSES, scale=2)

    def describe(self, losses: dict[str, float], metrics: dict[str, float]) -> str:
        text = f"loss {losses.get('loss', float('nan')):.4f}  1-step mse {metrics['val_mse']:.4f}"
        if "decoder_psnr" in metrics:
            text += f"  decoder {metrics['decoder_psnr']:.2f} dB"
        return text


def distill(
    state: StateDir,
    cfg: DistillConfig,
    *,
    device: torch.device,
    seed: int,
    quiet: bool,
    force: bool = False,
    discard_stale: bool = False,
    keep_pairs: bool = False,
    log: LogConfig | None = None,
) -> dict[str, Any]:
    """Distil (or resume, or skip when done and fresh) the student and the small decoder."""
    validate(cfg)
    if cfg.dmd and not cfg.cfg_range:  # DMD matches along the dial: guidance baked in skips it
        cfg = dataclasses.replace(cfg, dmd=0.0)
    teacher, stats, teacher_sha = load_dit(state, device)
    guide = load_guide(state, device) if cfg.teacher_autoguidance != 1.0 else None
    autoguidance = cfg.teacher_autoguidance if guide is not None else 1.0
    # what draws the pairs: the DiT, guided by its early weights too when it has them
    drawer = teacher if guide is None else AutoGuided(teacher, guide, autoguidance)
    classifier_guidance = cfg.teacher_classifier_guidance
    ae, ae_sha = load_ae(state, device)
    # the teacher's own sampling guidance (in its metadata), unless the settings name another
    guidance = cfg.teacher_cfg or float(teacher.sample_defaults.get("cfg", 1.0))
    interval = tuple(
        cfg.teacher_cfg_interval or teacher.sample_defaults.get("cfg_interval", (0.0, 1.0))
    )
    dial = tuple(cfg.cfg_range) or None  # the guidance scales the student learns to take
    dec_cfg = decoder_config(ae.cfg, cfg)
    in_pixels = bool(cfg.classifier_loss and cfg.classifier_rows)  # the class term's judge
    settings = to_dict(cfg)
    # a later setting stays out unless a switch that names it is on: earlier students stay fresh
    on = {
        key
        for switches, keys in LATER_SETTINGS.items()
        if all(settings[switch] for switch in switches)
        for key in keys
    }
    for key in {key for keys in LATER_SETTINGS.values() for key in keys} - on:
        settings.pop(key)
    config = {
        "distill": settings,
        "guidance": guidance,
        "autoguidance": autoguidance,
        "interval": list(interval),
        "seed": seed,
        "method": "reflow",
    }
    inputs = {"config": fingerprint(config), "dit": teacher_sha, "ae": ae_sha}
    pairs_path = state.path("distill", "pairs.safetensors")
    student_meta = {
        "kind": "ddream-student",
        "config": to_dict(teacher.cfg),
        "teacher_sha256": teacher_sha,
        "ae_sha256": ae_sha,
        "method": (
            "one-step distillation (t = 1)" if cfg.t_dist == "one" else "reflow (U-shaped t)"
        )
        + (f", distribution matching {cfg.dmd}" if cfg.dmd else "")
        + (f", class term {cfg.classifier_loss}" if cfg.classifier_loss else "")
        + (" in pixels" if in_pixels else ""),
        "teacher_sampler": (
            f"{cfg.teacher_solver} {cfg.teacher_steps} steps, cfg "
            f"{guidance if dial is None else f'{dial[0]} to {dial[1]}'} for t in "
            f"[{interval[0]}, {interval[1]}]"
            + (f", autoguidance {autoguidance}" if autoguidance != 1.0 else "")
            + (f", classifier guidance {classifier_guidance}" if classifier_guidance else "")
        ),
        "cfg": guidance,
        **({} if dial is None else {"cfg_range": list(dial)}),
        "steps": cfg.student_steps,
        "latent_mean": stats.mean.tolist(),
        "latent_std": stats.std.tolist(),
    }

    def make_task() -> DistillTask:
        scales = guidance if dial is None else dial
        train_latents, _ = load_latents(state, "train")
        test_latents, _ = load_latents(state, "test")
        draw, guides, classifier = drawer, (*interval, autoguidance), None
        if classifier_guidance or (cfg.classifier_loss and not in_pixels):
            classifier = latent_classifier(
                teacher.cfg.num_classes, cfg.classifier_epochs,
                (stats.standardise(train_latents.latents), train_latents.labels),
                (stats.standardise(test_latents.latents), test_latents.labels),
                seed, device, quiet,
            )  # fmt: skip
        pixel_judge = None
        if in_pixels:

            def decode(z: torch.Tensor) -> torch.Tensor:
                with autocast(device):
                    return ae.decoder(stats.unstandardise(z))

            judged = cfg.train_limit or len(train_latents.labels)  # quick: a slice, in seconds
            pixel_judge = pixel_classifier(
                teacher.cfg.num_classes, cfg.pixel_classifier_epochs, decode,
                (stats.standardise(train_latents.latents[:judged]), train_latents.labels[:judged]),
                (stats.standardise(test_latents.latents), test_latents.labels),
                seed, device, quiet,
            )  # fmt: skip
        if classifier_guidance:
            draw = ClassifierGuided(drawer, classifier, classifier_guidance)
            guides = (*guides, classifier_guidance, cfg.classifier_epochs)
        key = pairs_key(teacher_sha, cfg, scales, guides, seed)
        pairs = load_or_draw_pairs(
            pairs_path, draw, cfg, (scales, interval), seed, key, device, quiet
        )
        val = teacher_pairs(
            draw, VALIDATION_PAIRS, cfg, guidance, seed, "validation", device, interval=interval
        )
        n = min(cfg.train_limit or len(pairs["labels"]), len(pairs["labels"]))
        pairs = {k: v[:n].to(device) for k, v in pairs.items()}
        val = {k: v.to(device) for k, v in val.items()}
        torch.manual_seed(seed)
        student = DiT.started_from(teacher, dial is not None, device)  # reflow starts there
        decoder = None
        if dec_cfg is not None:
            decoder = Decoder(dec_cfg).to(device)
            warm_start(decoder, ae.decoder)
        return DistillTask(
            student,
            decoder,
            inference_decoder(ae.decoder, device) if decoder is not None else None,
            stats,
            cfg,
            pairs,
            val,
            stats.standardise(train_latents.latents).to(device),
            stats.standardise(test_latents.latents[:2000]).to(device),
            device,
            seed,
            guidance,
            ae.decoder.requires_grad_(False) if cfg.loss == "pixel" or in_pixels else None,
            train_latents.labels.to(device),
            latent_decoder(ae, stats.unstandardise, device)
            if log is None or log.snapshots
            else None,
            teacher,
            draw,
            interval,
            classifier,
            pixel_judge,
        )

    def files(task: DistillTask, result) -> tuple[dict, dict]:
        out = {"model": (state.output_path(STAGE, "model"), task.ema.shadow, student_meta)}
        if task.decoder is not None:
            last = result.history[-1] if result.history else {}
            out["decoder"] = (
                state.output_path(STAGE, "decoder"),
                task.decoder.state_dict(),
                {
                    "kind": "ddream-decoder",
                    "config": to_dict(dec_cfg),
                    "ae_sha256": ae_sha,
                    "psnr_vs_ae": last.get("decoder_psnr"),
                },
            )
        return out, {"teacher_sha256": teacher_sha}

    run = StageRun(state, STAGE, "distill", seed, quiet, force, discard_stale, log=log)
    done = run.train(config, inputs, cfg.epochs, cfg.checkpoint_every, make_task, files)
    if not keep_pairs:
        pairs_path.unlink(missing_ok=True)
    return done


def run_stage(run: PipelineRun) -> dict[str, Any]:
    """The student as `ddream all` distils it."""
    return distill(
        run.state, run.profile.distill, device=run.device, seed=run.seed, quiet=run.quiet,
        discard_stale=True, log=run.profile.log,
    )  # fmt: skip
