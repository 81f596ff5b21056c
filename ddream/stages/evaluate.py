"""`ddream eval`: how good the trained models are, in numbers the field recognises.

Reconstruction: PSNR and SSIM over the test split. Generation: N samples balanced over the classes
against the test split, through the features of a digit classifier that ddream trains once and caches
in the state dir: FID, class accuracy (share of samples of class k the classifier calls k), precision
and recall (k-NN manifolds, k=3). Beside them, the real-data floor: N held-out training digits
through the same extractor, so each number has something to be compared with.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ddream.artifacts import load_ae_with_dataset, load_dataset, report_path
from ddream.checkpoint import load_tensors, save_tensors
from ddream.data import Split, to_model, to_unit
from ddream.files import check_writable
from ddream.metrics import frechet_distance, precision_recall, psnr, ssim
from ddream.models.classifier import DigitClassifier
from ddream.runtime import ROWS, autocast, exact_dtype, seeded
from ddream.sampler import Sampler, SampleRequest
from ddream.state import StateDir

EXTRACTOR = "ddream DigitClassifier (3 conv + fc, 128-d penultimate features)"


# ---- the feature extractor -------------------------------------------------------------------------
def train_classifier(
    train: Split,
    test: Split,
    device: torch.device,
    seed: int = 0,
    epochs: int = 2,
    batch: int = 128,
    progress: Callable[[str], None] | None = None,
) -> tuple[DigitClassifier, float]:
    """A classifier trained from scratch; returns it (eval mode) and its test accuracy."""
    torch.manual_seed(seed)
    model = DigitClassifier().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = train.images.to(device)
    labels = train.labels.to(device)
    batch = max(8, min(batch, len(train) // 4))
    steps = len(train) // batch
    epochs = max(epochs, -(-200 // steps))  # at least 200 steps, for small datasets
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=seeded(seed, "classifier", epoch)).to(device)
        model.train()
        for s in range(steps):
            idx = order[s * batch : (s + 1) * batch]
            loss = F.cross_entropy(model(images[idx].float() / 255), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if progress:
            progress(f"classifier epoch {epoch + 1}/{epochs}")
    model.eval()
    return model, accuracy(model, test.images.float() / 255, test.labels, device)


@torch.inference_mode()
def features(
    model: DigitClassifier,
    images01: torch.Tensor,
    device: torch.device,
    batch: int = ROWS["features"],
):
    """(features, predicted class) of (N, 28, 28) images in [0, 1]."""
    feats, preds = [], []
    for i in range(0, len(images01), batch):
        f = model.features(images01[i : i + batch].to(device).float())
        feats.append(f.float().cpu())
        preds.append(model.head(f).argmax(1).cpu())
    return torch.cat(feats), torch.cat(preds)


def accuracy(model: DigitClassifier, images01: torch.Tensor, labels: torch.Tensor, device) -> float:
    _, pred = features(model, images01, device)
    return float((pred == labels.cpu()).float().mean())


def load_or_train_classifier(
    state: StateDir,
    train: Split,
    test: Split,
    dataset_fp: str,
    device: torch.device,
    say: Callable[[str], None],
) -> tuple[DigitClassifier, float]:
    """The cached classifier of this dataset, or a new one (about a minute on a CPU)."""
    path = state.path("eval", "classifier.safetensors")
    if path.exists():
        tensors, meta = load_tensors(path, device=device)
        if meta.get("kind") == "ddream-classifier" and meta.get("dataset") == dataset_fp:
            model = DigitClassifier().to(device)
            model.load_state_dict(tensors)
            return model.eval(), meta["test_accuracy"]
    if not state.exported:  # found now, not after a minute of training
        check_writable(path.parent)
    if state.exported:  # read-only: trained for this run alone
        say("training the evaluation classifier (an exported folder keeps none)")
        return train_classifier(train, test, device, progress=say)
    say("training the evaluation classifier (cached in the state dir)")
    model, acc = train_classifier(train, test, device, progress=say)
    save_tensors(
        path,
        model.state_dict(),
        {
            "kind": "ddream-classifier",
            "dataset": dataset_fp,
            "test_accuracy": acc,
            "extractor": EXTRACTOR,
        },
    )
    return model, acc


# ---- generation metrics ----------------------------------------------------------------------------
@dataclass
class GenerationScores:
    fid: float
    class_accuracy: float
    precision: float
    recall: float


def score_generation(
    model: DigitClassifier,
    fake01: torch.Tensor,
    fake_labels: torch.Tensor,
    real_feats: torch.Tensor,
    device: torch.device,
) -> GenerationScores:
    """FID, class accuracy, precision and recall of generated digits against real features."""
    feats, pred = features(model, fake01, device)
    p, r = precision_recall(real_feats, feats, k=3)
    acc = float((pred == fake_labels.cpu()).float().mean())
    return GenerationScores(frechet_distance(real_feats, feats), acc, p, r)


def balanced_labels(n: int) -> torch.Tensor:
    return torch.arange(n) % 10


@torch.inference_mode()
def generate(
    sampler: Sampler, labels: torch.Tensor, req: SampleRequest, batch: int = ROWS["draw"]
) -> torch.Tensor:
    """(N, 28, 28) generated digits in [0, 1], in batches, seeded per batch."""
    out = []
    for i in range(0, len(labels), batch):
        sub = SampleRequest(**{**req.__dict__, "seed": req.seed * 1_000_003 + i})
        images, _ = sampler.generate(labels[i : i + batch], sub)
        out.append(images.float() / 255)
    return torch.cat(out)


# ---- the command ---------------------------------------------------------------------------------
@torch.inference_mode()
def reconstruction_scores(
    encoder,
    decoder,
    test: Split,
    device: torch.device,
    batch: int = ROWS["reconstruct"],
    dtype: str | None = None,
) -> tuple[dict[str, float], torch.Tensor]:
    """PSNR and SSIM over the test split, and the reconstructions (N, 28, 28) in [0, 1]. The decoder
    computes in `dtype` (None: as training does), the encoder as training does."""
    p, s, out = [], [], []
    for i in range(0, len(test), batch):
        imgs = test.images[i : i + batch].to(device)
        with autocast(device):
            z = encoder(to_model(imgs))
        with autocast(device, dtype):
            recon = to_unit(decoder(z).float())
        real = imgs.float() / 255
        p.append(psnr(recon, real).cpu())
        s.append(ssim(recon, real).cpu())
        out.append(recon.float().cpu())
    scores = {"psnr": float(torch.cat(p).mean()), "ssim": float(torch.cat(s).mean())}
    return scores, torch.cat(out)


def evaluate(
    state: StateDir,
    req: SampleRequest,
    *,
    data_dir: Path | None,
    device: torch.device,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Every number of `ddream eval`, as a dict ready for JSON."""
    ae, _, dataset = load_ae_with_dataset(state, device)
    train, test = load_dataset(state, data_dir, dataset["name"])
    sampler = Sampler.from_state(state, device, req.model, req.dtype)
    req = sampler.resolve(req)
    classifier, clf_acc = load_or_train_classifier(
        state, train, test, dataset["fingerprint"], device, say
    )
    real_feats, _ = features(classifier, test.images.float() / 255, device)
    say("reconstruction: PSNR, SSIM and FID over the test split")
    recon, images = reconstruction_scores(ae.encoder, ae.decoder, test, device)
    recon["fid"] = frechet_distance(real_feats, features(classifier, images, device)[0])
    decoders = {f"autoencoder decoder, {exact_dtype(device)}": recon}
    # the decoder as sampling runs it, when that differs: a distilled one, or bf16 arithmetic
    sampling_decoder = f"{sampler.decoder_name} decoder, {sampler.dtype}"
    if sampling_decoder not in decoders:
        scores, images = reconstruction_scores(
            ae.encoder, sampler.decoder, test, device, dtype=sampler.dtype
        )
        scores["fid"] = frechet_distance(real_feats, features(classifier, images, device)[0])
        decoders[sampling_decoder] = scores

    # the floor: held-out real digits (from the training split) against the test split
    n = req.n
    floor_idx = torch.randperm(len(train), generator=seeded(req.seed, "floor"))[:n]
    floor = score_generation(
        classifier,
        train.images[floor_idx].float() / 255,
        train.labels[floor_idx],
        real_feats,
        device,
    )

    steps = f"{req.steps} {req.solver} step{'s' if req.steps > 1 else ''}"
    say(f"generation: {n} samples, {req.model} ({steps}, cfg {req.cfg})")
    labels = balanced_labels(n)
    t0 = time.perf_counter()
    fake = generate(sampler, labels, req)
    seconds = time.perf_counter() - t0
    gen = score_generation(classifier, fake, labels, real_feats, device)
    result = {
        "dataset": dataset["name"],
        "reconstruction": {k: round(v, 4) for k, v in recon.items()},
        "decoders": {name: {k: round(v, 4) for k, v in d.items()} for name, d in decoders.items()},
        "sampling_decoder": sampling_decoder,
        "model": req.model,
        "generation": {k: round(v, 4) for k, v in gen.__dict__.items()},
        "real_floor": {k: round(v, 4) for k, v in floor.__dict__.items()},
        "samples": n,
        "steps": req.steps,
        "cfg": req.cfg,
        "solver": req.solver,
        "seed": req.seed,
        "sampling_seconds": round(seconds, 2),
        "digits_per_s": round(n / seconds, 1),
        "extractor": EXTRACTOR,
        "extractor_test_accuracy": round(clf_acc, 4),
    }
    if not state.exported:  # an exported folder keeps the report it was exported with
        write_report(state, result)
    return result


def write_report(state: StateDir, result: dict[str, Any]) -> None:
    """The last evaluation, kept beside the classifier so that `ddream serve` can say how good the
    model is without scoring it again."""
    from ddream.files import atomic_write_bytes

    report = {**result, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    report_path(state).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(report_path(state), json.dumps(report, indent=2).encode())
