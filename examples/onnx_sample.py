"""Draw a grid of digits from an exported ddream model with onnxruntime, numpy and Pillow alone:
no ddream, no torch.

    ddream export my-digits --onnx
    python examples/onnx_sample.py my-digits --out grid.png --per-class 10 --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image


def draw(folder: Path, per_class: int, seed: int) -> np.ndarray:
    """uint8 digits (10 * per_class, 28, 28), one class after another."""
    config = json.loads((folder / "config.json").read_text())
    session = ort.InferenceSession(
        str(folder / "generator.onnx"), providers=["CPUExecutionProvider"]
    )
    labels = np.repeat(np.arange(config["num_classes"]), per_class).astype(np.int64)
    shape = (len(labels), *config["latent_shape"])
    noise = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return session.run(None, {"noise": noise, "label": labels})[0]


def grid(digits: np.ndarray, columns: int, scale: int = 2) -> Image.Image:
    rows = -(-len(digits) // columns)
    canvas = np.zeros((rows * 28, columns * 28), dtype=np.uint8)
    for i, digit in enumerate(digits):
        r, c = divmod(i, columns)
        canvas[r * 28 : (r + 1) * 28, c * 28 : (c + 1) * 28] = digit
    picture = Image.fromarray(canvas)
    return picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder `ddream export --onnx` wrote")
    parser.add_argument("--out", type=Path, default=Path("onnx_digits.png"), help="PNG to write")
    parser.add_argument("--per-class", type=int, default=10, help="digits of each class (a row)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not (args.folder / "generator.onnx").is_file():
        print(
            f"error: {args.folder} has no generator.onnx; run `ddream export DIR --onnx`",
            file=sys.stderr,
        )
        return 2
    if not 1 <= args.per_class <= 100:
        print("error: --per-class must be 1 to 100", file=sys.stderr)
        return 2
    digits = draw(args.folder, args.per_class, args.seed)
    grid(digits, args.per_class).save(args.out)
    print(f"{len(digits)} digits from {args.folder / 'generator.onnx'}: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
