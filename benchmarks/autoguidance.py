"""Autoguidance (Karras et al. 2024, arXiv 2406.02507) against classifier-free guidance for the
teacher: guide the DiT with a weaker copy of itself (the same DiT trained for fewer epochs, or a
narrower one) instead of its unconditional pass, v = v_weak + w (v - v_weak), optionally with CFG
on top. Scored like `ddream eval` (FID, class accuracy, precision, recall) on n samples.

    python benchmarks/autoguidance.py --state-dir RUNS/vs/new --data-dir DIR \\
        --work RUNS/autoguide --weak "epochs=1" "epochs=2" --w 1.5 2 2.5 --n 10000
    python benchmarks/autoguidance.py ... --weak guide --w 1.5 --cfg 1 1.2 1.4 --hi 0.5   # a new DiT's

(Classifier guidance by a latent classifier, measured here in issue 23 and not kept, was removed in
0.2.0 with its `--classifier` option; docs/benchmarks-history.md has its figures.)

A weak model is "epochs=E[,width=W]" (a DiT trained so on the state dir's latents), "resume=PATH"
(the EMA weights in a stopped train-dit's resume checkpoint) or "guide" (the one train-dit kept).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from common import ROOT, Scorer, append_json, score_cells


class Guided(torch.nn.Module):
    """A teacher whose guidance is autoguidance (a weak model's conditional velocity in place of
    the unconditional one), plus the good model's classifier-free guidance `cfg` added for t <= `hi`:
    v = v_weak + w (v - v_weak) + (cfg - 1) (v - v_null)."""

    guidance_input = False

    def __init__(self, good, weak, w: float, cfg: float = 1.0, hi: float = 0.7, lo: float = 0.0):
        super().__init__()
        self.good, self.weak, self.w, self.extra_cfg, self.hi, self.lo = good, weak, w, cfg, hi, lo
        self.cfg = good.cfg

    def forward_with_cfg(self, x, t, y, _scale):
        v_good = self.good(x, t, y)
        v = self.weak(x, t, y) if self.w != 1.0 else v_good
        v = v + self.w * (v_good - v)
        if self.extra_cfg != 1.0 and self.lo <= float(t[0]) <= self.hi:
            v_null = self.good(x, t, torch.full_like(y, self.good.cfg.num_classes))
            v = v + (self.extra_cfg - 1.0) * (v_good - v_null)
        return v


def weak_model(state: Path, work: Path, spec: str) -> Path:
    """A DiT trained as `spec` says ("epochs=1", "epochs=2,width=96") on the state dir's latents."""
    opts = dict(kv.split("=") for kv in spec.split(","))
    folder = work / spec.replace("=", "").replace(",", "-")
    if not (folder / "dit" / "model.safetensors").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("state.json", "ae", "latents"):
            src = state / name
            (shutil.copytree if src.is_dir() else shutil.copy)(src, folder / name)
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in opts.items()]
        subprocess.run([sys.executable, "-m", "ddream", "train-dit", "--state-dir", str(folder),
                        "--quiet", "--force", *flags], check=True, cwd=ROOT)  # fmt: skip
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--weak", nargs="+", default=["epochs=1"])
    ap.add_argument("--w", type=float, nargs="+", default=[1.5, 2.0])
    ap.add_argument("--cfg", type=float, nargs="+", default=[1.0], help="CFG added for t <= --hi")
    ap.add_argument("--hi", type=float, nargs="+", default=[0.7])
    ap.add_argument("--lo", type=float, default=0.0, help="CFG added for t >= --lo only")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from ddream.sampler import Sampler, SampleRequest
    from ddream.state import StateDir

    cpu = torch.device("cpu")
    scorer = Scorer(args.state_dir, args.data_dir)
    teacher = Sampler.from_state(StateDir(args.state_dir), cpu, "teacher")
    good = teacher.dit
    print("| weak model | w | CFG on top | FID | class acc. | precision | recall |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for spec in args.weak:
        if spec == "guide":  # the guide train-dit kept (dit/guide.safetensors)
            from ddream.artifacts import load_guide

            weak_dit = load_guide(StateDir(args.state_dir), cpu)
        elif spec.startswith("resume="):  # the EMA weights of a stopped run's resume checkpoint
            import copy

            from ddream.checkpoint import load_tensors, split_prefix

            weak_dit = copy.deepcopy(good)
            weak_dit.load_state_dict(split_prefix(load_tensors(Path(spec[7:]))[0], "ema"))
        else:
            folder = weak_model(args.state_dir, args.work, spec)
            weak_dit = Sampler.from_state(StateDir(folder), cpu, "teacher").dit
        for w in args.w:
            for cfg, hi in [(c, h) for c in args.cfg for h in args.hi]:
                teacher.dit = Guided(good, weak_dit, w, cfg, hi, args.lo)
                req = teacher.resolve(SampleRequest(model="teacher", steps=args.steps, cfg=1.0,
                                                    solver="heun", cfg_interval=(0.0, 1.0)))  # fmt: skip
                g = scorer.score(teacher, req, args.n)
                print(
                    f"| {spec} | {w} | {cfg} on [{args.lo}, {hi}] | {score_cells(g)} |",
                    flush=True,
                )
                append_json(args.json, {"weak": spec, "w": w, "cfg": cfg, "lo": args.lo, "hi": hi, "n": args.n, "fid": g.fid,
                                        "acc": g.class_accuracy, "precision": g.precision,
                                        "recall": g.recall})  # fmt: skip
    teacher.dit = good


if __name__ == "__main__":
    main()
