"""Safetensors files with JSON metadata: atomic saves, validated loads, and resume checkpoints.

No pickle anywhere: weights and optimiser tensors go into safetensors, everything else into its
metadata as JSON.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ddream.errors import DDreamError
from ddream.files import atomic_write_bytes

META_KEY = "ddream"


class BadArtifact(DDreamError):
    """A file ddream wrote earlier that is now missing, truncated, altered or foreign."""


def tensor_bytes(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> bytes:
    """Tensors + JSON metadata as the bytes of a safetensors file."""
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    # One metadata key holding sorted JSON: safetensors keeps metadata in a hash map whose order
    # changes from process to process, and the same weights must give the same file and sha256.
    return st_save(clean, metadata={META_KEY: json.dumps(meta, sort_keys=True)})


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> str:
    """Write tensors + JSON metadata atomically; returns the file's sha256."""
    data = tensor_bytes(tensors, meta)
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def read_metadata(path: Path) -> dict[str, Any]:
    """The JSON metadata of a safetensors file, reading only its header."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise BadArtifact(f"{path} is truncated (no safetensors header)")
            (n,) = struct.unpack("<Q", head)
            if n == 0 or n > 100_000_000:
                raise BadArtifact(f"{path} is not a safetensors file (header length {n})")
            header = f.read(n)
    except FileNotFoundError:
        raise BadArtifact(f"{path} is missing") from None
    if len(header) < n:
        raise BadArtifact(f"{path} is truncated (header cut short)")
    try:
        meta = json.loads(header).get("__metadata__", {}) or {}
        return json.loads(meta[META_KEY]) if META_KEY in meta else {}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError):
        raise BadArtifact(f"{path} has a corrupt safetensors header") from None


def load_tensors(
    path: Path, expected_sha256: str | None = None, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata of a file, after checking its sha256 (when one was recorded)."""
    path = Path(path)
    meta = read_metadata(path)
    data = path.read_bytes()
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise BadArtifact(
            f"{path} does not match the sha256 recorded in the state; it was "
            "altered or truncated: rerun the stage that makes it"
        )
    try:
        tensors = st_load(data)
    except Exception as e:  # safetensors raises its own error types for bad payloads
        raise BadArtifact(
            f"{path} cannot be read as safetensors ({e}); rerun the stage that makes it"
        ) from None
    return {k: v.to(device) for k, v in tensors.items()}, meta


# ---- optimiser state without pickle ------------------------------------------------------------
def flatten_optimizer(
    opt: torch.optim.Optimizer, prefix: str
) -> tuple[dict[str, torch.Tensor], Any]:
    """An optimiser's state as flat tensors plus its JSON-ready param_groups."""
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for name, value in st.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{prefix}.{idx}.{name}"] = t
    return tensors, sd["param_groups"]


def restore_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str, param_groups: Any
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    head = prefix + "."
    for key, value in tensors.items():
        if key.startswith(head):
            idx, name = key[len(head) :].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": param_groups})
    # A fused optimiser walks a parameter, its gradient and its moments as one flat run of memory,
    # so each moment must be laid out as its parameter is (channels-last weights): loaded tensors
    # come back contiguous. (The per-tensor loop indexes by shape and did not mind.)
    for group in opt.param_groups:
        for p in group["params"]:
            for name, value in opt.state.get(p, {}).items():
                if (
                    torch.is_tensor(value)
                    and value.shape == p.shape
                    and value.stride() != p.stride()
                ):
                    opt.state[p][name] = torch.empty_like(p).copy_(value)


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    head = prefix + "."
    return {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}


def prefixed(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in sd.items()}
