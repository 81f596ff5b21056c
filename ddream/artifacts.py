"""Loading what earlier stages left in the state directory, checked against the sha256 in their records."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ddream.checkpoint import BadArtifact, load_tensors
from ddream.config import AEConfig, DiTConfig, from_dict
from ddream.data import Split, load_split, resolve_data_dir
from ddream.errors import BadInput, DDreamError, NotBuilt
from ddream.models.autoencoder import AutoEncoder
from ddream.models.dit import DiT
from ddream.registry import OUTPUT_KINDS, STAGE, STAGES
from ddream.state import StateDir


def done_output(state: StateDir, stage: str, name: str) -> tuple[Path, str]:
    """Path and recorded sha256 of a finished stage's output, or a one-line 'run X first'. While a
    newer run of the stage is unfinished, the finished one it will replace."""
    view = state.view(stage)
    rec = view.record
    if view.status in ("missing", "partial") or name not in rec.get("outputs", {}):
        raise NotBuilt(f"no finished {stage} stage in {state.root}; {_what_to_run(state, stage)}")
    if view.status == "stale":
        raise NotBuilt(
            f"the {stage} stage in {state.root} is stale ({view.detail}); "
            f"{_what_to_run(state, stage)}"
        )
    out = rec["outputs"][name]
    path = state.root / out["path"]
    if not path.exists():
        raise BadArtifact(
            f"{path} is missing; rerun `ddream {STAGE[stage].command}` (or `ddream all`)"
        )
    return path, out["sha256"]


def _what_to_run(state: StateDir, stage: str) -> str:
    """'run `ddream X` first', naming the earliest stage up to `stage` that is not done and fresh."""
    upto = STAGES[: STAGES.index(stage) + 1]
    first = next((s for s in upto if state.view(s).status != "done"), stage)
    if first == stage:
        return f"run `ddream {STAGE[stage].command}` first"
    return f"run `ddream {STAGE[first].command}` and the stages after it first (or `ddream all`)"


def load_ae(state: StateDir, device: torch.device) -> tuple[AutoEncoder, str]:
    """The trained autoencoder in eval mode, and its weights' sha256."""
    ae, sha, _ = load_ae_with_dataset(state, device)
    return ae, sha


def load_ae_with_dataset(
    state: StateDir, device: torch.device
) -> tuple[AutoEncoder, str, dict[str, str]]:
    """The trained autoencoder, its sha256, and the dataset it was trained on (name, fingerprint)."""
    ae, meta, sha = load_model(state, "ae", "model", device)
    dataset = {"name": meta.get("dataset_name", "mnist"), "fingerprint": meta.get("dataset", "")}
    return ae, sha, dataset


# the kinds of model file ddream writes: kind -> (what it is, the module, its settings)
MODEL_KINDS = {
    "ddream-ae": ("autoencoder", AutoEncoder, AEConfig),
    "ddream-dit": ("DiT", DiT, DiTConfig),
    "ddream-student": ("student", DiT, DiTConfig),
    "ddream-decoder": ("decoder", None, AEConfig),
}


def load_model(
    state: StateDir, stage: str, output: str, device: torch.device
) -> tuple[torch.nn.Module, dict, str]:
    """A model of the kind this stage output holds, from its file, checked (done and fresh, its
    recorded sha256, its kind, weights matching its config), in eval mode; with its metadata and
    sha256."""
    path, sha = done_output(state, stage, output)
    tensors, meta = load_tensors(path, sha, device)
    kind = OUTPUT_KINDS[(stage, output)]
    name, module, settings = MODEL_KINDS[kind]
    if meta.get("kind") != kind:
        raise BadArtifact(f"{path} is not a ddream {name}")
    if module is None:  # a decoder alone
        from ddream.models.autoencoder import Decoder as module
    settings = from_dict(settings, meta["config"])
    # the guidance-conditioned student takes w as an input (its metadata names the range it learned)
    dial = {"guidance_input": True} if kind == "ddream-student" and meta.get("cfg_range") else {}
    model = module(settings, **dial).to(device)
    try:
        model.load_state_dict(tensors)
    except RuntimeError:
        raise BadArtifact(f"{path} does not hold the weights its config describes") from None
    return model.eval(), meta, sha


@dataclass
class Latents:
    latents: torch.Tensor  # (N, C, 2, 2) float32, as the encoder made them
    labels: torch.Tensor
    mean: torch.Tensor  # (C,) per-channel statistics of the training latents
    std: torch.Tensor
    ae_sha: str

    def standardise(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.mean.view(1, -1, 1, 1).to(z)) / self.std.view(1, -1, 1, 1).to(z)

    def unstandardise(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std.view(1, -1, 1, 1).to(z) + self.mean.view(1, -1, 1, 1).to(z)


def load_latents(state: StateDir, split: str) -> tuple[Latents, str]:
    path, sha = done_output(state, "encode", split)
    tensors, meta = load_tensors(path, sha)
    if meta.get("kind") != "ddream-latents":
        raise BadArtifact(f"{path} is not a ddream latents file")
    return Latents(
        tensors["latents"], tensors["labels"], tensors["mean"], tensors["std"], meta["ae_sha256"]
    ), sha


def load_dit(state: StateDir, device: torch.device) -> tuple[DiT, Latents, str]:
    """The EMA DiT in eval mode, the latent statistics it was trained with, and its sha256."""
    model, meta, sha = load_model(state, "dit", "model", device)
    if "latent_mean" in meta:  # self-describing: no latents file needed
        mean, std = torch.tensor(meta["latent_mean"]), torch.tensor(meta["latent_std"])
        stats = Latents(torch.empty(0), torch.empty(0), mean, std, meta["ae_sha256"])
    else:  # written by 0.1.0: the statistics live in the latents files
        stats, _ = load_latents(state, "test")
    if not meta.get("standardised", True):  # trained on the raw latents (the digitdreamer preset)
        stats = dataclasses.replace(
            stats, mean=torch.zeros_like(stats.mean), std=torch.ones_like(stats.std)
        )
    model.sample_defaults = meta.get("sample", {})
    return model.eval(), stats, sha


def load_guide(state: StateDir, device: torch.device) -> DiT | None:
    """The DiT's autoguidance model (its own EMA weights early in the run), or None for a DiT
    trained without one (`guide_share = 0`, or an earlier release)."""
    record = state.view("dit").record or {}
    if "guide" not in record.get("outputs", {}):
        return None
    model, _, _ = load_model(state, "dit", "guide", device)
    return model


@dataclass
class Student:
    """The distilled sampler: a DiT with guidance as an input (or baked in), the latent statistics it draws in, the
    teacher settings it imitates, and the small decoder when the distill stage made one."""

    model: DiT
    stats: Latents
    meta: dict
    decoder: torch.nn.Module | None
    decoder_meta: dict | None


def load_student(state: StateDir, device: torch.device) -> Student:
    """The distill stage's student (and small decoder), checked; self-describing: its metadata holds
    the latent mean/std, so no latents file is read."""
    model, meta, _ = load_model(state, "distill", "model", device)
    mean, std = torch.tensor(meta["latent_mean"]), torch.tensor(meta["latent_std"])
    stats = Latents(torch.empty(0), torch.empty(0), mean, std, meta["ae_sha256"])
    decoder, dec_meta = None, None
    if "decoder" in state.view("distill").record.get("outputs", {}):
        decoder, dec_meta, _ = load_model(state, "distill", "decoder", device)
    return Student(model, stats, meta, decoder, dec_meta)


def load_dataset(
    state: StateDir, data_dir: Path | None, dataset: str = "mnist"
) -> tuple[Split, Split]:
    """Both splits of a dataset, from --data-dir or the state dir's download cache (an exported
    model folder has none, and takes no download)."""
    if data_dir is None and state.exported:
        raise BadInput(
            f"{state.root} is an exported model folder and holds no data; give --data-dir"
        )
    folder = resolve_data_dir(data_dir, state.root, dataset)
    return load_split(folder, "train", dataset), load_split(folder, "test", dataset)


# ---- the last `ddream eval`: eval/report.json ----------------------------------------------------
def report_path(state: StateDir) -> Path:
    return state.path("eval", "report.json")


def read_report(state: StateDir) -> dict[str, Any] | None:
    """The last `ddream eval` of this state dir, None when it was never run; a damaged report is
    one line naming the file."""
    path = report_path(state)
    if not path.exists():
        return None
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        report = None
    tables = ("generation", "reconstruction", "real_floor")
    if not isinstance(report, dict) or not all(
        isinstance(report.get(t, {}), dict)
        and all(_is_number(v) for v in report.get(t, {}).values())
        for t in tables
    ):
        raise DDreamError(f"{path} is damaged; run `ddream eval` again (or delete it)")
    return report


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
