"""`ddream export OUT`: a trained state dir as a self-contained model folder that any reading command,
`ddream.load` and the Hugging Face Hub take as it is.

    OUT/
      ae/model.safetensors, dit/model.safetensors      the autoencoder and the DiT (teacher)
      distill/student.safetensors, decoder.safetensors  the one-step student and its sampling decoder
      eval/report.json, eval/classifier.safetensors     the last `ddream eval` and its classifier
      samples.png, reconstructions.png                  pictures made at export time (the card's)
      generator.onnx, encoder.onnx, decoder.onnx        with --onnx (stages/onnx_export.py)
      config.json                                       what sampling needs, in plain JSON
      README.md                                         the model card (YAML front matter for the Hub)
      manifest.json                                     the stage records and every file's sha256

The folder is built beside OUT and renamed into place when complete, so an export that fails or is
interrupted leaves nothing half-written, and OUT as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ddream.artifacts import done_output, read_report
from ddream.config import to_dict
from ddream.errors import BadInput
from ddream.manifest import MANIFEST, write_manifest
from ddream.registry import STAGE, STAGE_TABLE
from ddream.sampler import Sampler, SampleRequest
from ddream.stages.card import model_card
from ddream.stages.reconstruct import reconstruct_test
from ddream.stages.sample import sample
from ddream.state import StateDir
from ddream.version import __version__

# the stage outputs a model folder carries: (stage, output)
EXPORTED = tuple((s.name, o.name) for s in STAGE_TABLE for o in s.outputs if o.exported)
EVAL_FILES = ("eval/report.json", "eval/classifier.safetensors")
RECONSTRUCTED = 30  # test digits in the card's reconstruction figure


def check_out(out: Path, state: StateDir, force: bool) -> None:
    """OUT may be new, empty, or (with --force) a folder to replace; never the state dir itself,
    a folder holding it, or another state dir."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out} is a file; export into a folder")
    src, dst = state.root.resolve(), out.resolve()
    if dst == src or dst in src.parents:
        raise BadInput(f"{out} holds the state dir {state.root}; export somewhere else")
    if (out / "state.json").exists():
        raise BadInput(f"{out} is a ddream state dir; export into another folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise BadInput(f"{out} is not empty; choose an empty folder or add --force to replace it")


def check_complete(state: StateDir) -> None:
    """Every stage a model folder carries is done and fresh, or one line naming the first that is not."""
    if not state.state_file.exists():
        raise BadInput(f"{state.root} holds no trained model (no state.json); run `ddream all`")
    for stage in dict(EXPORTED):
        view = state.view(stage)
        if view.status != "done":
            raise BadInput(
                f"cannot export {state.root}: its {stage} stage is {view.status} ({view.detail}); "
                f"run `ddream {STAGE[stage].command}` (or `ddream all`) first"
            )


def export(
    state: StateDir,
    out: Path,
    *,
    onnx: bool,
    force: bool,
    data_dir: Path | None,
    device: torch.device,
    seed: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Write the model folder; returns a summary for the CLI."""
    if onnx:
        from ddream.stages.onnx_export import require_onnx

        require_onnx()
    check_out(out, state, force)
    check_complete(state)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as e:
        raise BadInput(f"cannot write {out}: {e.strerror}") from None
    try:
        summary = _fill(state, tmp, onnx=onnx, data_dir=data_dir, device=device, seed=seed, say=say)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**summary, "out": str(out)}


def _fill(
    state: StateDir,
    folder: Path,
    *,
    onnx: bool,
    data_dir: Path | None,
    device: torch.device,
    seed: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    # the finished records (while a newer run of a stage is unfinished, the model it would replace)
    records = {stage: state.view(stage).record for stage, _ in EXPORTED}
    stages: dict[str, Any] = {}
    for stage, output in EXPORTED:
        if output not in records[stage]["outputs"]:
            continue  # a distill stage without a small decoder
        path, sha = done_output(state, stage, output)
        rel = path.relative_to(state.root).as_posix()
        _copy(path, folder / rel)
        record = stages.setdefault(stage, _exported_record(records[stage]))
        record["outputs"][output] = {"path": rel, "sha256": sha}
    for rel in EVAL_FILES:
        if state.path(rel).is_file():
            _copy(state.path(rel), folder / rel)

    say("pictures for the card: a grid of samples and test reconstructions")
    req = SampleRequest(n=100, seed=seed, dtype="fp32")
    sample(state, req, device=device, grid_path=folder / "samples.png", gif_path=None,
           npz_path=None, scale=2)  # fmt: skip
    reconstruction = _reconstructions(state, folder / "reconstructions.png", data_dir, device)

    sampler = Sampler.student(state, device, "fp32")
    onnx_info = None
    if onnx:
        from ddream.stages.onnx_export import CHECK_DIGITS, export_onnx

        say(f"ONNX: generator, encoder and decoder, checked against torch on {CHECK_DIGITS} digits")
        cpu = torch.device("cpu")  # the graphs are traced and checked on the CPU
        on_cpu = sampler if sampler.device.type == "cpu" else Sampler.student(state, cpu, "fp32")
        onnx_info = export_onnx(on_cpu, state, folder, seed)

    config = sampling_config(sampler, stages, onnx_info)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    report = read_report(state)
    (folder / "README.md").write_text(model_card(config, stages, report, reconstruction))
    manifest = write_manifest(
        folder, stages, {"ddream": __version__, "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    )
    return {
        "files": sorted([*manifest["files"], MANIFEST]),
        "onnx": onnx_info,
        "evaluated": report is not None,
        "reconstructions": reconstruction is not None,
    }


def _exported_record(record: dict[str, Any]) -> dict[str, Any]:
    """A stage record as an export carries it: what it was, how it was trained, not where."""
    keep = ("status", "config", "metrics", "epoch", "epochs", "wall_time", "finished", "versions")
    return {**{k: record[k] for k in keep if k in record}, "outputs": {}}


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _reconstructions(
    state: StateDir, path: Path, data_dir: Path | None, device: torch.device
) -> dict[str, Any] | None:
    """Test digits over their reconstructions, when the test split is at hand (--data-dir, or the
    state dir's download cache); without it the card says how to make the figure."""
    try:
        res = reconstruct_test(state, RECONSTRUCTED, out=path, data_dir=data_dir, device=device)
    except BadInput:
        if data_dir is not None:
            raise
        return None
    return {"n": res["n"], "psnr": res["psnr"], "file": path.name}


def sampling_config(
    sampler: Sampler, stages: dict[str, Any], onnx: dict[str, Any] | None
) -> dict[str, Any]:
    """config.json: what a reader needs to draw digits, without ddream."""
    dit = sampler.dit.cfg
    return {
        "library": "ddream",
        "ddream_version": __version__,
        "model_type": "rectified-flow latent diffusion: F-16 autoencoder + class-conditional DiT",
        "image_size": 28,
        "num_classes": dit.num_classes,
        "latent_shape": [dit.latent_channels, dit.latent_size, dit.latent_size],
        "latent_mean": sampler.stats.mean.tolist(),
        "latent_std": sampler.stats.std.tolist(),
        "sampler": {
            "model": "student",
            "steps": int(sampler.defaults["steps"]),
            "solver": "euler",
            "guidance": sampler.defaults["cfg"],
            # the guidance scales the student takes (absent: its one scale is baked in)
            **({"guidance_range": list(r)} if (r := sampler.defaults.get("cfg_range")) else {}),
            "decoder": sampler.decoder_name,
        },
        "time_convention": "t = 1 is noise, t = 0 is data; x_t = (1 - t) x + t eps; v = eps - x",
        "dit": to_dict(dit),
        "files": {
            f"{stage}/{output}": rec["outputs"][output]["path"]
            for stage, rec in stages.items()
            for output in rec["outputs"]
        },
        "onnx": onnx,
    }


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder to OUT; an existing OUT (--force) is moved aside first and removed
    only once the new one is in place."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old / out.name)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old / out.name, out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.chmod(out, 0o755)  # mkdtemp made it private; a model folder is meant to be shared
