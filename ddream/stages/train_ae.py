"""`ddream train-ae`: the autoencoder, on augmented digits then on the originals, with a GAN term.

Losses: L1 + MSE reconstruction, plus (from `gan_start` on) a hinge GAN against a patch
discriminator. The generator's adversarial term is computed on the live reconstruction, so its
gradient reaches the autoencoder (DigitDreamer's notebook detached it, and its GAN never acted).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ddream.artifacts import load_dataset
from ddream.checkpoint import (
    flatten_optimizer,
    prefixed,
    restore_optimizer,
    split_prefix,
)
from ddream.config import AEConfig, AETrainConfig, LogConfig, fingerprint, to_dict
from ddream.data import Augment, Split, model_to_uint8, to_model, to_unit
from ddream.distributed import SINGLE, Dist
from ddream.metrics import psnr
from ddream.models.autoencoder import AutoEncoder
from ddream.models.discriminator import PatchDiscriminator
from ddream.render import grid
from ddream.runtime import ROWS, autocast, seeded, training_dtype
from ddream.stages.record import PipelineRun, StageRun
from ddream.state import StateDir
from ddream.train import adamw, scheduled_lr

STAGE = "ae"


def ae_losses(
    ae: AutoEncoder,
    disc: PatchDiscriminator,
    x: torch.Tensor,
    *,
    gan_weight: float,
    use_gan: bool,
    recon_loss: str = "l1+mse",
    gan_loss: str = "hinge",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, reconstruction, adversarial) losses of the autoencoder on a batch x in [-1, 1], and
    the reconstruction itself (which the discriminator's step reuses)."""
    recon = ae(x)
    if recon_loss == "bce":  # on the sigmoid output, as probabilities of ink
        p = ((recon.float() + 1) / 2).clamp(1e-6, 1 - 1e-6)
        rec_loss = F.binary_cross_entropy(p, ((x.float() + 1) / 2).clamp(0, 1))
    else:
        rec_loss = F.l1_loss(recon, x) + F.mse_loss(recon, x)
    if use_gan:  # the generator's term, on the live reconstruction so its gradient reaches the AE
        # Only the gradient with respect to the input is wanted here: the discriminator's own
        # weights learn in its step. Frozen for this pass, it skips their gradients (exact: the
        # autoencoder's gradient is the same; tests/test_train_ae.py).
        frozen = [p for p in disc.parameters() if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        try:
            logits = disc(recon).float()
        finally:
            for p in frozen:
                p.requires_grad_(True)
        gan = F.softplus(-logits).mean() if gan_loss == "bce" else -logits.mean()
    else:
        gan = torch.zeros((), device=x.device)
    return rec_loss + gan_weight * gan, rec_loss, gan, recon


def disc_loss(
    disc: PatchDiscriminator, real: torch.Tensor, fake: torch.Tensor, kind: str = "hinge"
) -> torch.Tensor:
    """The discriminator's loss: hinge, or BCE (real -> 1, fake -> 0). One forward over both halves
    (DistributedDataParallel allows one forward per backward)."""
    real_logits, fake_logits = disc(torch.cat([real, fake.detach()])).float().chunk(2)
    if kind == "bce":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


EPOCH_TEST = 2000  # test digits scored after each epoch but the last (which scores them all)
SNAPSHOT_DIGITS = 8  # test digits the snapshot after each epoch reconstructs


@dataclass
class AETask:
    """The autoencoder's training, as `run_training` drives it."""

    ae: AutoEncoder
    disc: PatchDiscriminator
    cfg: AETrainConfig
    train: Split
    test: Split
    device: torch.device
    seed: int
    dist: Dist = SINGLE

    def __post_init__(self) -> None:
        # Channels-last memory for the models and every batch: oneDNN's kernels for the narrow
        # 32x32 convolutions run ~4x faster in it (the autoencoder ~1.13x overall, BENCHMARKS.md).
        self.ae.to(memory_format=torch.channels_last)
        self.disc.to(memory_format=torch.channels_last)
        self.ae_ddp, self.disc_ddp = self.dist.wrap(self.ae), self.dist.wrap(self.disc)
        self.n_train = len(self.train)
        self.batch_size = self.cfg.batch_size
        self.total_epochs = self.cfg.epochs + self.cfg.finetune_epochs
        self.total_steps = self.total_epochs * (self.n_train // self.batch_size)
        self.opt_ae = adamw(self.ae.parameters(), self.cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
        self.opt_d = adamw(self.disc.parameters(), self.cfg.lr, betas=(0.5, 0.99), weight_decay=0.0)
        self.dtype = training_dtype(self.device, "autoencoder")  # scores stay exact
        self.augment = Augment(self.cfg.rotate, self.cfg.translate, self.cfg.scale, self.cfg.shear)
        self.images = self.train.images.to(self.device)
        self._epoch = 0
        self._dec_ddp: torch.nn.Module | None = None

    def decoder_only(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction with the encoder frozen: its latents without a graph, so that only
        the decoder learns (and the encoder's backward pass is skipped)."""
        if self._dec_ddp is None:  # its own DDP wrapper: the encoder has no gradients to reduce
            self._dec_ddp = self.dist.wrap(self.ae.decoder)
        with torch.no_grad():
            z = self.ae.encoder(x)
        return self._dec_ddp(z)

    def gan_on(self, global_step: int) -> bool:
        """Whether the GAN term (and the discriminator's step) acts at this step."""
        return self.cfg.gan_weight > 0 and global_step >= self.cfg.gan_start

    def decoder_alone(self, epoch: int, global_step: int) -> bool:
        """Whether a step trains the decoder alone: the GAN phase's augmented epochs."""
        return self.cfg.gan_decoder_only and self.gan_on(global_step) and epoch < self.cfg.epochs

    def step(self, epoch: int, global_step: int, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        self._epoch = epoch
        x = to_model(self.images[idx.to(self.device)])
        if epoch < self.cfg.epochs:  # drawn for the whole batch, so every rank sees the same draws
            x = self.augment(x, seeded(self.seed, "augment", global_step))
        x = self.dist.shard(x).contiguous(memory_format=torch.channels_last)
        lr = scheduled_lr(self.cfg.lr_schedule, self.cfg.lr, global_step, self.total_steps)
        for opt in (self.opt_ae, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        use_gan = self.gan_on(global_step)
        self.ae.train()
        with autocast(self.device, self.dtype):
            total, rec, gan, recon = ae_losses(
                self.decoder_only if self.decoder_alone(epoch, global_step) else self.ae_ddp,
                self.disc,  # frozen for this pass; DDP keeps its weights equal on every rank
                x,
                gan_weight=self.cfg.gan_weight,
                use_gan=use_gan,
                recon_loss=self.cfg.recon_loss,
                gan_loss=self.cfg.gan_loss,
            )
        self.opt_ae.zero_grad(set_to_none=True)
        total.backward()
        self.opt_ae.step()
        out = {"loss": rec.detach()}
        if use_gan:  # the discriminator costs nothing until the GAN term starts
            with autocast(self.device, self.dtype):
                d = disc_loss(self.disc_ddp, x, recon.detach(), self.cfg.gan_loss)
            self.opt_d.zero_grad(set_to_none=True)
            d.backward()
            self.opt_d.step()
            out["gan"], out["disc"] = gan.detach(), d.detach()
        return out

    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        """Test PSNR after an epoch: on the first EPOCH_TEST digits of the test split while
        training goes on, on the whole split after the last epoch (the figure the record keeps)."""
        last = self._epoch + 1 >= self.total_epochs
        split = self.test if last else self.test.head(min(EPOCH_TEST, len(self.test)))
        return {"test_psnr": round(evaluate_psnr(self.ae, split, self.device), 3)}

    def state(self) -> dict[str, torch.Tensor]:
        opt_ae, self._groups_ae = flatten_optimizer(self.opt_ae, "opt_ae")
        opt_d, self._groups_d = flatten_optimizer(self.opt_d, "opt_d")
        return {
            **prefixed(self.ae.state_dict(), "ae"),
            **prefixed(self.disc.state_dict(), "disc"),
            **opt_ae,
            **opt_d,
        }

    def meta(self) -> dict[str, Any]:
        return {"groups_ae": self._groups_ae, "groups_d": self._groups_d}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        tensors = {k: v.to(self.device) for k, v in tensors.items()}
        self.ae.load_state_dict(split_prefix(tensors, "ae"))
        self.disc.load_state_dict(split_prefix(tensors, "disc"))
        restore_optimizer(self.opt_ae, tensors, "opt_ae", meta["groups_ae"])
        restore_optimizer(self.opt_d, tensors, "opt_d", meta["groups_d"])

    def describe(self, losses: dict[str, float], metrics: dict[str, float]) -> str:
        return (
            f"loss {losses.get('loss', float('nan')):.4f}  test PSNR {metrics['test_psnr']:.2f} dB"
        )

    def phase(self, epoch: int, global_step: int) -> str:
        """The part of the schedule a step is in (the history's epoch rows, the plot's shading)."""
        part = "augmented" if epoch < self.cfg.epochs else "fine-tune"
        alone = " (decoder alone)" if self.decoder_alone(epoch, global_step) else ""
        return part + (" + GAN" if self.gan_on(global_step) else "") + alone

    @torch.inference_mode()
    def snapshot(self) -> np.ndarray:
        """The same SNAPSHOT_DIGITS test digits (top row) and their reconstructions (bottom)."""
        digits = self.test.images[:SNAPSHOT_DIGITS].to(self.device)
        was_training = self.ae.training
        self.ae.eval()
        with autocast(self.device):
            recon = self.ae(to_model(digits))
        self.ae.train(was_training)
        return grid(torch.cat([digits, model_to_uint8(recon)]).cpu(), len(digits), scale=2)


@torch.inference_mode()
def evaluate_psnr(
    ae: AutoEncoder, split: Split, device: torch.device, batch: int = ROWS["reconstruct"]
) -> float:
    """Mean per-image PSNR at 28x28 of a split's reconstructions."""
    was_training = ae.training
    ae.eval()
    scores = []
    for i in range(0, len(split), batch):
        imgs = split.images[i : i + batch].to(device)
        with autocast(device):
            recon = ae(to_model(imgs))
        scores.append(psnr(to_unit(recon), imgs.float() / 255.0))
    ae.train(was_training)
    return float(torch.cat(scores).mean())


def train_ae(
    state: StateDir,
    model_cfg: AEConfig,
    cfg: AETrainConfig,
    *,
    data_dir: Path | None,
    dataset: str = "mnist",
    device: torch.device,
    seed: int,
    quiet: bool,
    force: bool = False,
    discard_stale: bool = False,
    dist: Dist = SINGLE,
    log: LogConfig | None = None,
) -> dict[str, Any]:
    """Train (or resume, or skip when done and fresh) the autoencoder; returns a summary."""
    train_full, test_full = load_dataset(state, data_dir, dataset)
    train, test = train_full.head(cfg.train_limit), test_full.head(cfg.test_limit)
    config = {"model": to_dict(model_cfg), "train": to_dict(cfg), "seed": seed, "dataset": dataset}
    inputs = {"config": fingerprint(config), "data": train.fingerprint() + test.fingerprint()}
    dataset_fp = train_full.fingerprint() + test_full.fingerprint()
    meta = {
        "kind": "ddream-ae",
        "config": to_dict(model_cfg),
        "dataset": dataset_fp,
        "dataset_name": dataset,
    }

    def make_task() -> AETask:
        torch.manual_seed(seed)
        ae = AutoEncoder(model_cfg).to(device)
        disc = PatchDiscriminator(model_cfg.disc_width).to(device)
        return AETask(ae, disc, cfg, train, test, device, seed, dist)

    run = StageRun(state, STAGE, "ae", seed, quiet, force, discard_stale, dist, log)
    return run.train(
        config, inputs, cfg.epochs + cfg.finetune_epochs, cfg.checkpoint_every, make_task,
        lambda task, _: ({"model": (state.output_path(STAGE, "model"), task.ae.state_dict(), meta)}, None),
    )  # fmt: skip


def run_stage(run: PipelineRun) -> dict[str, Any]:
    """The autoencoder as `ddream all` trains it."""
    return train_ae(
        run.state, run.profile.ae, run.profile.ae_train, data_dir=run.data_dir, dataset=run.dataset,
        device=run.device, seed=run.seed, quiet=run.quiet, discard_stale=True, log=run.profile.log,
    )  # fmt: skip
