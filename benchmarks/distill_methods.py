"""Distillation variants side by side: each distils the same trained DiT (same teacher pairs) with
other settings, then scores the one-step student (FID, class accuracy, precision, recall on N
samples, `ddream eval`'s extractor) with the autoencoder's decoder. Wall times are the distill
stage's own (the pairs, drawn once, are timed apart).

    python benchmarks/distill_methods.py --data-dir DIR --state RUNS/ref --work RUNS/methods \
        --variant "default:" --variant "l2:loss=l2"
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

import torch
from common import Scorer, add_state_dir


def parse_variant(text: str):
    """NAME:key=value,key=value over DistillConfig's fields."""
    from ddream.config import DistillConfig

    name, _, spec = text.partition(":")
    fields = {f.name: f.type for f in dataclasses.fields(DistillConfig)}
    changes = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        if key not in fields:
            raise SystemExit(f"unknown setting {key!r}; known: {', '.join(fields)}")
        default = getattr(DistillConfig(), key)
        if isinstance(default, tuple):  # a tuple as LO/HI (or empty: ())
            changes[key] = tuple(type(default[0])(v) for v in value.split("/")) if value else ()
        else:
            changes[key] = type(default)(value)
    return name, changes


def copy_trained(src: Path, dst: Path) -> None:
    """The state dir up to the DiT (and the cached eval classifier), without any distill stage."""
    from ddream.state import StateDir

    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for part in ("ae", "latents", "dit", "eval"):
        if (src / part).exists():
            shutil.copytree(src / part, dst / part)
    shutil.copy(src / "state.json", dst / "state.json")
    StateDir(dst).drop_record("distill")


def score(state: Path, data: Path, n: int, steps_list, cfgs) -> list[dict]:
    """The student's scores at each step count and guidance scale (None: its default)."""
    from ddream.sampler import Sampler, SampleRequest
    from ddream.state import StateDir

    scorer = Scorer(state, data)
    sampler = Sampler.from_state(StateDir(state), torch.device("cpu"), "student")
    out = []
    if "cfg_range" not in sampler.defaults:  # guidance baked in: its own scale alone
        cfgs = [None]
    for steps in steps_list:
        for cfg in cfgs:
            req = sampler.resolve(SampleRequest(n=n, steps=steps, cfg=cfg))
            g = scorer.score(sampler, req, n)
            out.append({"steps": steps, "cfg": req.cfg, **g.__dict__})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    add_state_dir(ap)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--variant", action="append", required=True)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--cfg", type=float, nargs="+", help="guidance scales (default: the student's)")
    ap.add_argument("--seed", type=int, default=0, help="distill's seed (pairs and student)")
    args = ap.parse_args()

    from ddream.config import DistillConfig
    from ddream.stages.distill import distill
    from ddream.state import StateDir

    args.work.mkdir(parents=True, exist_ok=True)
    pairs_cache = args.work / "pairs.safetensors"
    results = {}
    for spec in args.variant:
        name, changes = parse_variant(spec)
        cfg = dataclasses.replace(DistillConfig(), decoder_widths=(), **changes)
        state = args.work / name
        copy_trained(args.state, state)
        if pairs_cache.exists():  # same teacher settings: the same pairs, drawn once
            (state / "distill").mkdir(exist_ok=True)
            shutil.copy(pairs_cache, state / "distill" / "pairs.safetensors")
        t0 = time.perf_counter()
        res = distill(StateDir(state), cfg, device=torch.device("cpu"), seed=args.seed, quiet=False,
                      keep_pairs=True)  # fmt: skip
        seconds = time.perf_counter() - t0
        kept = state / "distill" / "pairs.safetensors"
        if kept.exists():
            shutil.copy(kept, pairs_cache)
            kept.unlink()
        results[name] = {"changes": changes, "seconds": round(seconds, 1),
                         "metrics": res["metrics"], "scores": score(state, args.data_dir, args.n, [1], args.cfg or [None])}  # fmt: skip
        (args.work / "results.json").write_text(json.dumps(results, indent=2))
        print(json.dumps({name: results[name]}), flush=True)
    print(
        "\n| variant | settings | distill s | steps | w | FID | class acc. | precision | recall |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        for s in r["scores"]:
            settings = ", ".join(f"{k}={v}" for k, v in r["changes"].items()) or "defaults"
            print(f"| {name} | {settings} | {r['seconds']} | {s['steps']} | {s['cfg']:g} | {s['fid']:.2f} | "
                  f"{s['class_accuracy']:.2%} | {s['precision']:.3f} | {s['recall']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
