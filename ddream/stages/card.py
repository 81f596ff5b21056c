"""The model card of an exported folder (README.md): YAML front matter that the Hugging Face Hub
indexes, then what the model is, how good it is (the last `ddream eval`), how it was trained, how to
load it, and its files. Plain text in, text out: `ddream export` gathers the facts."""

from __future__ import annotations

from typing import Any

METRICS = ("fid", "precision", "recall", "accuracy", "psnr", "ssim")
DATASET_IDS = {"mnist": "mnist", "fashion": "fashion_mnist", "kmnist": "kmnist"}
DATASET_IDS |= {"emnist-digits": "emnist", "qmnist": "qmnist"}


def front_matter(dataset: str, onnx: bool) -> str:
    tags = ["rectified-flow", "latent-diffusion", "diffusion-transformer", "dit", "one-step"]
    tags += ["image-generation", "class-conditional", dataset] + (["onnx"] if onnx else [])
    lines = ["---", "library_name: ddream", "license: mit", "tags:"]
    lines += [f"- {t}" for t in tags]
    lines += ["datasets:", f"- {DATASET_IDS.get(dataset, dataset)}", "metrics:"]
    lines += [f"- {m}" for m in METRICS]
    return "\n".join(lines) + "\n---\n"


def _eval_section(report: dict[str, Any] | None) -> str:
    if report is None:
        return (
            "Not evaluated before export: `ddream eval --data-dir DIR` on the state dir, then "
            "export again, puts its figures here.\n"
        )
    g, floor = report.get("generation", {}), report.get("real_floor", {})
    rec = report.get("reconstruction", {})
    steps = report.get("steps")
    rows = [
        "| | FID | class accuracy | precision | recall |",
        "| --- | --- | --- | --- | --- |",
        f"| this model ({report.get('model')}, {steps} {report.get('solver')} "
        f"step{'' if steps == 1 else 's'}, guidance {report.get('cfg')}) | {_f(g, 'fid', 2)} | "
        f"{_pct(g)} | {_f(g, 'precision', 3)} | {_f(g, 'recall', 3)} |",
        f"| real digits (the floor) | {_f(floor, 'fid', 2)} | {_pct(floor)} | "
        f"{_f(floor, 'precision', 3)} | {_f(floor, 'recall', 3)} |",
    ]
    return (
        f"`ddream eval` of {report.get('time', '?')}: {report.get('samples')} digits drawn at "
        f"{report.get('digits_per_s')} digits/s, scored against the test split through "
        f"{report.get('extractor')}.\n\n" + "\n".join(rows) + "\n\n"
        f"Reconstruction over the test split: PSNR {_f(rec, 'psnr', 2)} dB, SSIM "
        f"{_f(rec, 'ssim', 4)}, FID {_f(rec, 'fid', 3)}.\n"
    )


def _f(d: dict, key: str, digits: int) -> str:
    return f"{d[key]:.{digits}f}" if isinstance(d.get(key), (int, float)) else "n/a"


def _pct(d: dict, key: str = "class_accuracy") -> str:
    v = d.get(key)
    return f"{100 * v:.2f}%" if isinstance(v, (int, float)) else "n/a"


def _training_section(stages: dict[str, Any]) -> str:
    rows = ["| stage | what | schedule | result | wall time |", "| --- | --- | --- | --- | --- |"]
    ae, dit, distill = stages.get("ae", {}), stages.get("dit", {}), stages.get("distill", {})
    ae_train = ae.get("config", {}).get("train", {})
    rows.append(
        f"| autoencoder | F-16, 32x32 -> {_latent(ae)} latent, DC-AE shortcuts, GAN loss | "
        f"{ae_train.get('epochs', '?')} augmented + {ae_train.get('finetune_epochs', '?')} "
        f"fine-tune epochs | test PSNR {_f(ae.get('metrics', {}), 'test_psnr', 2)} dB | "
        f"{_secs(ae)} |"
    )
    model = dit.get("config", {}).get("model", {})
    rows.append(
        f"| DiT (teacher) | width {model.get('width', '?')}, depth {model.get('depth', '?')}, "
        f"patch {model.get('patch_size', '?')}, rectified flow | "
        f"{dit.get('config', {}).get('train', {}).get('epochs', '?')} epochs | val loss "
        f"{_f(dit.get('metrics', {}), 'val_loss', 4)} | {_secs(dit)} |"
    )
    d = distill.get("config", {})
    cfg = d.get("distill", {})
    rows.append(
        f"| student | the DiT distilled to one step, {_dial_words(cfg, d.get('guidance', '?'))} | "
        f"{cfg.get('epochs', '?')} epochs on {cfg.get('pairs', '?')} teacher pairs "
        f"({cfg.get('teacher_solver', '?')} {cfg.get('teacher_steps', '?')} steps) | "
        f"judge {_pct(distill.get('metrics', {}), 'judge_acc')} of its digits | {_secs(distill)} |"
    )
    versions = ae.get("versions", {})
    return "\n".join(rows) + (
        f"\n\nTrained with ddream {versions.get('ddream', '?')}, torch "
        f"{versions.get('torch', '?')}, Python {versions.get('python', '?')}.\n"
    )


def _latent(ae: dict) -> str:
    c = ae.get("config", {}).get("model", {}).get("latent_channels", "?")
    return f"2x2x{c}"


def _secs(record: dict) -> str:
    t = record.get("wall_time")
    return f"{t:.0f} s" if isinstance(t, (int, float)) else "?"


USE = """\
With ddream installed (the folder works wherever a state dir does, read-only):

```bash
ddream sample --state-dir THIS_FOLDER --grid digits.png
ddream reconstruct --state-dir THIS_FOLDER my_digit.png
ddream serve --state-dir THIS_FOLDER
```

```python
import ddream
model = ddream.load("THIS_FOLDER")
digits = model.sample(classes=[3, 8], n=16, seed=0)   # uint8 (16, 28, 28)
```
"""

USE_ONNX = """\
Without ddream or torch, with onnxruntime and numpy alone:

```python
import numpy as np, onnxruntime as ort
gen = ort.InferenceSession("THIS_FOLDER/generator.onnx")
labels = np.repeat(np.arange(10), 8).astype(np.int64)
noise = np.random.default_rng(0).standard_normal((len(labels), {shape})).astype(np.float32)
digits = gen.run(None, {{"noise": noise, "label": labels}})[0]   # uint8 (80, 28, 28)
```

`generator.onnx` draws at the student's default guidance ({guidance}); ddream's own sampler takes
other scales (`ddream sample --cfg W`). `encoder.onnx` (uint8 digits -> latents) and `decoder.onnx`
(latents -> uint8 digits) hold the autoencoder. Each graph was checked against ddream's torch sampler on {n} digits at export: their
pixels were at most {worst} grey level apart.
"""


def model_card(
    config: dict[str, Any],
    stages: dict[str, Any],
    report: dict[str, Any] | None,
    reconstruction: dict[str, Any] | None,
) -> str:
    """README.md for an exported folder."""
    dataset = (report or {}).get("dataset") or "mnist"
    onnx = config.get("onnx")
    sampler = config["sampler"]
    c, size, _ = config["latent_shape"]
    steps = sampler["steps"]
    pictures = "| new digits, one class a row (seed 0) |"
    cells = "| ![samples](samples.png) |"
    if reconstruction:
        pictures += (
            f" {reconstruction['n']} test digits (odd rows) over their reconstructions (PSNR "
            f"{reconstruction['psnr']} dB) |"
        )
        cells += " ![reconstructions](reconstructions.png) |"
    parts = [
        front_matter(dataset, onnx is not None),
        f"# ddream: {dataset} digits in {steps} network pass{'' if steps == 1 else 'es'}\n",
        "A rectified-flow latent diffusion model made with ddream: an F-16 autoencoder (28x28 digits padded to "
        f"32x32 -> a {size}x{size}x{c} latent) and a class-conditional "
        "DiT trained with rectified flow on its latents, distilled into a student that draws a "
        f"digit in {steps} Euler step{'' if steps == 1 else 's'} {_guidance_words(sampler)}. "
        "The DiT itself (the teacher) is included for guided multi-step sampling.\n",
        "\n".join([pictures, "| --- |" + (" --- |" if reconstruction else ""), cells]) + "\n",
        "## How good\n",
        _eval_section(report),
        "## How it was trained\n",
        _training_section(stages),
        "## How to use it\n",
        USE,
    ]
    if onnx:
        shape = ", ".join(map(str, config["latent_shape"]))
        worst = max(onnx["max_grey_levels"].values())
        parts.append(
            USE_ONNX.format(
                shape=shape,
                n=onnx["checked_digits"],
                worst=worst,
                guidance=onnx.get("guidance", "its own"),
            )
        )
    parts += [
        "To share it on the Hugging Face Hub: `huggingface-cli upload USER/NAME THIS_FOLDER`.\n",
        "## Files\n",
        "`manifest.json` lists every file with its sha256; ddream refuses a folder whose files no "
        "longer match it. `config.json` holds what sampling needs (latent shape and statistics, the "
        "sampler's steps and guidance, the DiT's settings).\n",
        "## Data and license\n",
        f"Trained on {dataset} (the training split; scored on the test split). The weights are "
        "released under the MIT license, as ddream is; the dataset keeps its own terms.\n",
    ]
    return "\n".join(parts)


def _guidance_words(sampler: dict) -> str:
    """How the student takes guidance, for the card's first paragraph."""
    if "guidance_range" in sampler:
        lo, hi = sampler["guidance_range"]
        return (
            f"at any guidance scale from {lo:g} to {hi:g} (default {sampler['guidance']:g}; "
            "`ddream sample --cfg W`)"
        )
    return f"with guidance {sampler['guidance']} baked in"


def _dial_words(cfg: dict, guidance) -> str:
    """The distill stage's guidance, for the card's training table."""
    if cfg.get("cfg_range"):
        lo, hi = cfg["cfg_range"]
        return f"guidance an input, {lo:g} to {hi:g} (default {guidance})"
    return f"guidance {guidance} baked in"
