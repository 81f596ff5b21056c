"""ONNX graphs of a trained model (`ddream export --onnx`), for onnxruntime in any language:

- generator.onnx: (noise float32 (N, C, S, S), label int64 (N,)) -> digits uint8 (N, 28, 28): the
  student's Euler steps from t = 1 at its default guidance, un-standardised, through the sampling
  decoder;
- encoder.onnx:   digits uint8 (N, 28, 28) -> latents float32 (N, C, S, S), as the autoencoder makes them;
- decoder.onnx:   latents float32 (N, C, S, S) -> digits uint8 (N, 28, 28), the autoencoder's decoder.

Every graph takes a dynamic batch and is checked against ddream's own torch sampler when written.
Needs the `export` extra (onnx, onnxruntime).
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ddream.artifacts import load_ae, load_student
from ddream.data import PAD
from ddream.errors import BadInput, DDreamError
from ddream.models.dit import DiT
from ddream.sampler import Sampler, SampleRequest

OPSET = 17
CHECK_DIGITS = 1000  # digits compared with torch at export time
MAX_GREY_LEVELS = 1  # the most an ONNX digit's pixel may differ from torch's (uint8)


def require_onnx() -> None:
    """One line naming the extra to install, before any work, when onnx or onnxruntime is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise BadInput("--onnx needs onnx and onnxruntime: pip install 'ddream[export]'") from None


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Decoder output (N, 1, 32, 32) in [-1, 1] -> uint8 (N, 28, 28), as data.model_to_uint8."""
    crop = x[:, 0, PAD:-PAD, PAD:-PAD]
    return ((crop + 1.0) * 127.5).clamp(0.0, 255.0).round().to(torch.uint8)


class Generator(nn.Module):
    """Noise and classes -> digits: the student's sampler in one graph."""

    def __init__(
        self, student: DiT, decoder: nn.Module, mean, std, steps: int, guidance: float
    ) -> None:
        super().__init__()
        self.student, self.decoder, self.steps = student, decoder, steps
        self.guidance = guidance  # a constant of the graph, for a student that takes it as input
        self.register_buffer("mean", mean.float().view(1, -1, 1, 1))
        self.register_buffer("std", std.float().view(1, -1, 1, 1))

    def forward(self, noise: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        x = noise
        for i in range(self.steps):  # flow.sample_ode's Euler steps, t = 1 -> 0
            t = torch.ones_like(label, dtype=x.dtype) * (1.0 - i / self.steps)
            w = torch.full_like(t, self.guidance) if self.student.guidance_input else None
            x = x - self.student(x, t, label, w, dedupe=False) / self.steps
        return _to_uint8(self.decoder(x * self.std + self.mean))


class Encoder(nn.Module):
    """uint8 digits -> the autoencoder's latents."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, digits: torch.Tensor) -> torch.Tensor:
        x = digits.float().unsqueeze(1) / 127.5 - 1.0
        return self.encoder(nn.functional.pad(x, (PAD, PAD, PAD, PAD), value=-1.0))


class DecoderGraph(nn.Module):
    """Latents -> uint8 digits."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return _to_uint8(self.decoder(latents))


def _export(module: nn.Module, args: tuple, names: list[str], out_name: str, path: Path) -> None:
    batch = {0: "batch"}
    options: dict[str, Any] = {
        "input_names": names,
        "output_names": [out_name],
        "dynamic_axes": {name: batch for name in [*names, out_name]},
        "opset_version": OPSET,
    }
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False  # the TorchScript exporter: exact here, and needs no onnxscript
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation notes, not the user's concern
        torch.onnx.export(module.eval(), args, str(path), **options)


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@torch.inference_mode()
def export_onnx(sampler: Sampler, state, folder: Path, seed: int) -> dict[str, Any]:
    """Write the three graphs into `folder`; check each against torch on CHECK_DIGITS digits (fp32)
    and return what was checked. The sampler is the student's, loaded in fp32 on the CPU."""
    if sampler.kind != "student" or sampler.dtype != "fp32" or sampler.device.type != "cpu":
        raise DDreamError("ONNX export needs the student's sampler in fp32 on the CPU")
    ae, _ = load_ae(state, sampler.device)
    decoder = load_student(state, sampler.device).decoder or ae.decoder  # as Sampler.student picks
    steps = int(sampler.defaults["steps"])
    graphs = {
        "generator": Generator(
            sampler.dit,
            decoder,
            sampler.stats.mean,
            sampler.stats.std,
            steps,
            float(sampler.defaults["cfg"]),
        ),  # fmt: skip
        "encoder": Encoder(ae.encoder),
        "decoder": DecoderGraph(ae.decoder),
    }
    labels = torch.arange(CHECK_DIGITS) % sampler.dit.cfg.num_classes
    noise = sampler.noise(CHECK_DIGITS, seed)
    want, _ = sampler.generate(labels, SampleRequest(n=CHECK_DIGITS, seed=seed), noise=noise)
    _export(graphs["generator"], (noise[:2], labels[:2]), ["noise", "label"], "digits",
            folder / "generator.onnx")  # fmt: skip
    _export(graphs["encoder"], (want[:2],), ["digits"], "latents", folder / "encoder.onnx")
    latents = ae.encoder(nn.functional.pad(want.float().unsqueeze(1) / 127.5 - 1.0, (PAD,) * 4,
                                           value=-1.0))  # fmt: skip
    _export(graphs["decoder"], (latents[:2],), ["latents"], "digits", folder / "decoder.onnx")

    got = _session(folder / "generator.onnx").run(
        None, {"noise": noise.numpy(), "label": labels.numpy()}
    )[0]
    enc = _session(folder / "encoder.onnx").run(None, {"digits": want.numpy()})[0]
    back = _session(folder / "decoder.onnx").run(None, {"latents": enc})[0]
    torch_back = _to_uint8(ae.decoder(latents))
    diffs = {
        "generator": _grey_levels(torch.from_numpy(got), want),
        "encoder+decoder": _grey_levels(torch.from_numpy(back), torch_back),
    }
    worst = max(diffs.values())
    if worst > MAX_GREY_LEVELS:
        for name in graphs:
            (folder / f"{name}.onnx").unlink(missing_ok=True)
        raise DDreamError(
            f"the ONNX graphs differ from torch by {worst} grey levels on {CHECK_DIGITS} digits "
            f"(at most {MAX_GREY_LEVELS} allowed): {diffs}"
        )
    return {
        "files": {name: f"{name}.onnx" for name in graphs},
        "opset": OPSET,
        "checked_digits": CHECK_DIGITS,
        "max_grey_levels": diffs,
        "student_steps": steps,
        "guidance": float(sampler.defaults["cfg"]),
    }


def _grey_levels(a: torch.Tensor, b: torch.Tensor) -> int:
    return int((a.int() - b.int()).abs().max())
