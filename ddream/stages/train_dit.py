"""`ddream train-dit`: rectified flow on (standardised) latents, class-conditional with a null class,
an EMA of the weights (what sampling uses), validation loss on the test latents each epoch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ddream.artifacts import load_ae, load_latents
from ddream.checkpoint import (
    flatten_optimizer,
    prefixed,
    restore_optimizer,
    split_prefix,
)
from ddream.config import DiTConfig, DiTTrainConfig, LogConfig, SampleConfig, fingerprint, to_dict
from ddream.distributed import SINGLE, Dist
from ddream.errors import BadInput, DDreamError
from ddream.flow import flow_loss, guided_velocity, sample_ode, sample_t
from ddream.models.dit import DiT
from ddream.render import grid
from ddream.runtime import autocast, seeded, training_dtype
from ddream.stages.record import PipelineRun, StageRun
from ddream.state import StateDir
from ddream.train import EMA, EMATask, adamw, scheduled_lr
from ddream.watch import SNAPSHOT_CLASSES, latent_decoder, snapshot_noise

STAGE = "dit"


@dataclass
class DiTTask(EMATask):
    model: DiT
    cfg: DiTTrainConfig
    x_train: torch.Tensor  # standardised latents on the device
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    device: torch.device
    seed: int
    dist: Dist = SINGLE
    sample_cfg: SampleConfig | None = None  # the teacher's default sampler (the snapshots')
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None  # latents -> uint8 digits

    def __post_init__(self) -> None:
        self.model_ddp = self.dist.wrap(self.model)
        self.n_train = len(self.y_train)
        self.batch_size = self.cfg.batch_size
        self.total_epochs = self.cfg.epochs
        self.total_steps = self.total_epochs * (self.n_train // self.batch_size)
        self.opt = adamw(self.model.parameters(), self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.dtype = training_dtype(self.device, "dit step")  # scores stay exact
        self.ema = EMA(self.model, self.cfg.ema_decay)
        self.null = self.model.cfg.num_classes
        # the autoguidance model: the EMA weights after this many steps (0: none)
        self.guide_step = round(self.cfg.guide_share * self.total_steps)
        self.guide: dict[str, torch.Tensor] | None = None

    def draws(
        self, n: int, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Timesteps, noise and the label-drop mask for a batch, from one generator."""
        t = sample_t(n, gen, self.cfg.logit_normal, self.cfg.uniform_share)
        eps = torch.randn((n, *self.x_train.shape[1:]), generator=gen)
        drop = torch.rand(n, generator=gen) < self.model.cfg.class_dropout
        return t.to(self.device), eps.to(self.device), drop.to(self.device)

    def step(self, epoch: int, global_step: int, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        idx = idx.to(self.device)
        x, y = self.x_train[idx], self.y_train[idx]
        t, eps, drop = self.draws(len(idx), seeded(self.seed, "flow", global_step))
        y = torch.where(drop, torch.full_like(y, self.null), y)
        # every rank draws for the whole batch and trains on its rows of it
        x, y, t, eps = (self.dist.shard(v) for v in (x, y, t, eps))
        for group in self.opt.param_groups:
            group["lr"] = scheduled_lr(
                self.cfg.lr_schedule, self.cfg.lr, global_step, self.total_steps
            )
        self.model.train()
        with autocast(self.device, self.dtype):
            loss = flow_loss(lambda xt, tt: self.model_ddp(xt, tt, y, dedupe=False), x, t, eps)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.ema.update(self.model)
        if global_step + 1 == self.guide_step:
            self.guide = {k: v.clone() for k, v in self.ema.shadow.items()}
        return {"loss": loss.detach()}

    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        """Flow loss of the EMA weights on the test latents, with fixed draws so epochs compare."""
        ema_model = self.ema_model()
        t, eps, _ = self.draws(len(self.y_test), seeded(self.seed, "validation"))
        with autocast(self.device):
            loss = flow_loss(
                lambda xt, tt: ema_model(xt, tt, self.y_test, dedupe=False), self.x_test, t, eps
            )
        return {"val_loss": round(float(loss), 5)}

    def ema_model(self) -> DiT:
        model = DiT(self.model.cfg).to(self.device)
        model.load_state_dict(self.ema.shadow)
        return model.eval()

    def state(self) -> dict[str, torch.Tensor]:
        opt, self._groups = flatten_optimizer(self.opt, "opt")
        return {
            **prefixed(self.model.state_dict(), "model"),
            **self.ema.tensors(),
            **prefixed(self.guide or {}, "guide"),
            **opt,
        }

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        tensors = {k: v.to(self.device) for k, v in tensors.items()}
        self.model.load_state_dict(split_prefix(tensors, "model"))
        self.ema.restore(tensors, meta)
        self.guide = split_prefix(tensors, "guide") or None
        restore_optimizer(self.opt, tensors, "opt", meta["groups"])

    def describe(self, losses: dict[str, float], metrics: dict[str, float]) -> str:
        return f"loss {losses.get('loss', float('nan')):.4f}  val {metrics['val_loss']:.4f}"

    @torch.inference_mode()
    def snapshot(self) -> np.ndarray | None:
        """Every class four times (a class a column) from the same noise after every epoch: the
        EMA weights with the model's default sampler and guidance, through the autoencoder."""
        if self.decode is None or self.sample_cfg is None:
            return None
        noise, labels = snapshot_noise(self.seed, self.x_train.shape[1:], self.device)
        cast = lambda: autocast(self.device)  # noqa: E731
        s = self.sample_cfg
        velocity = guided_velocity(
            self.ema_model(), labels, s.cfg, tuple(s.cfg_interval), len(labels), cast
        )
        z, _ = sample_ode(velocity, noise, s.steps, s.solver)
        return grid(self.decode(z).cpu(), SNAPSHOT_CLASSES, scale=2)


def train_dit(
    state: StateDir,
    model_cfg: DiTConfig,
    cfg: DiTTrainConfig,
    *,
    device: torch.device,
    seed: int,
    quiet: bool,
    sample_cfg: SampleConfig | None = None,
    force: bool = False,
    discard_stale: bool = False,
    dist: Dist = SINGLE,
    log: LogConfig | None = None,
) -> dict[str, Any]:
    """Train (or resume, or skip when done and fresh) the DiT on the encoded latents."""
    sample_cfg = sample_cfg or SampleConfig()
    train, train_sha = load_latents(state, "train")
    test, test_sha = load_latents(state, "test")
    channels = train.latents.shape[1]
    if model_cfg.latent_channels != channels or model_cfg.latent_size != train.latents.shape[-1]:
        model_cfg = DiTConfig(
            **{
                **to_dict(model_cfg),
                "latent_channels": channels,
                "latent_size": train.latents.shape[-1],
            }
        )
    if model_cfg.latent_size % model_cfg.patch_size:
        raise BadInput(
            f"--patch-size {model_cfg.patch_size} does not divide the latent size "
            f"{model_cfg.latent_size}"
        )
    config = {
        "model": to_dict(model_cfg),
        "train": to_dict(cfg),
        "seed": seed,
        "sample": to_dict(sample_cfg),
    }
    # the sampling defaults travel in the model's metadata but do not make the DiT stale
    trained_by = {k: v for k, v in config.items() if k != "sample"}
    inputs = {"config": fingerprint(trained_by), "encode": train_sha, "encode_test": test_sha}
    meta = {
        "kind": "ddream-dit",
        "config": to_dict(model_cfg),
        "latents": train_sha,
        "weights": "ema" if cfg.ema_decay > 0 else "raw",
        "standardised": cfg.standardise,
        "sample": to_dict(sample_cfg),
        # self-describing: sampling needs no latents file for the statistics
        "latent_mean": train.mean.tolist(),
        "latent_std": train.std.tolist(),
        "ae_sha256": train.ae_sha,
    }

    def make_task() -> DiTTask:
        n_train = cfg.train_limit or len(train.labels)
        n_test = cfg.test_limit or len(test.labels)
        scale = train.standardise if cfg.standardise else (lambda z: z)
        x_train = scale(train.latents[:n_train]).to(device)
        x_test = scale(test.latents[:n_test]).to(device)
        torch.manual_seed(seed)
        y_train, y_test = train.labels[:n_train].to(device), test.labels[:n_test].to(device)
        model = DiT(model_cfg).to(device)
        return DiTTask(
            model, cfg, x_train, y_train, x_test, y_test, device, seed, dist, sample_cfg,
            snapshot_decoder(state, train, cfg.standardise, device, log),
        )  # fmt: skip

    def files(task: DiTTask, _) -> tuple[dict, None]:
        out = {"model": (state.output_path(STAGE, "model"), task.ema.shadow, meta)}
        if task.guide is not None:  # the autoguidance model: the same DiT, early in this run
            guide_meta = {**meta, "guide_step": task.guide_step, "sample": {}}
            out["guide"] = (state.output_path(STAGE, "guide"), task.guide, guide_meta)
        return out, None

    run = StageRun(state, STAGE, "dit", seed, quiet, force, discard_stale, dist, log)
    return run.train(config, inputs, cfg.epochs, cfg.checkpoint_every, make_task, files)


def snapshot_decoder(state: StateDir, latents, standardised: bool, device: torch.device,
                     log: LogConfig | None) -> Callable[[torch.Tensor], torch.Tensor] | None:  # fmt: skip
    """The snapshots' decoder: the autoencoder that made these latents, or None (no snapshots)
    when snapshots are off or that autoencoder is no longer the state dir's."""
    if log is not None and not log.snapshots:
        return None
    try:
        ae, ae_sha = load_ae(state, device)
    except DDreamError:
        return None
    if ae_sha != latents.ae_sha:
        return None
    return latent_decoder(
        ae.eval(), latents.unstandardise if standardised else (lambda z: z), device
    )


def run_stage(run: PipelineRun) -> dict[str, Any]:
    """The DiT as `ddream all` trains it."""
    return train_dit(
        run.state, run.profile.dit, run.profile.dit_train, device=run.device, seed=run.seed,
        quiet=run.quiet, sample_cfg=run.profile.sample, discard_stale=True, log=run.profile.log,
    )  # fmt: skip
