"""Editing a digit, measured on MNIST test digits with `ddream eval`'s classifier (which no edit uses):

- class change: each digit sent to a random other class, at several strengths, by FlowEdit (ddream's),
  plain SDEdit (noise the latent to t = strength, run the teacher's ODE as the target class) and
  inversion then regeneration (the teacher's ODE up as the class it reads, down as the target);
  beside fresh samples of the target class. Columns: the share the classifier calls the target,
  the median pixel L2 to the source, the share of edits closer to their source than the median of 8
  fresh target-class samples is, and the PSNR of an identity edit (--to the source's own class);
- completion, with the top half, the left half and the centre 14x14 box kept: ddream's search,
  a brute-force search over 100,000 student digits (the oracle: the best fit of them all) and the
  latent blend (diffusers' inpainting: the teacher's ODE, unconditioned, with the kept cells'
  latents put back at every step; 8 draws, the best fit kept). Column: how often the best completion
  is the true class; for ddream's, also its posterior's accuracy and log-loss, that the kept pixels
  are unchanged, and how far apart its K completions are in the hidden part;
- sigma: the posterior's likelihood width chosen on 300 *training* digits (log-loss);
- time: one edit and one completion (K = 8) of one digit through the Python API, median of 7.

    python benchmarks/edit.py --state-dir RUNS/ref --data-dir DIR [--n 1000] \
        [--part change complete sigma time] [--json out.jsonl]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from common import Scorer, add_state_dir, append_json

from ddream.artifacts import load_dataset
from ddream.completer import Completer, paste
from ddream.editor import EDIT_CFG, Editor, edit_steps
from ddream.masks import box_mask, named_mask
from ddream.runtime import seeded
from ddream.sampler import SampleRequest
from ddream.stages.evaluate import features
from ddream.state import StateDir

STRENGTHS = (0.6, 0.7, 0.8, 0.9, 1.0)
MASKS = {"top half": named_mask("top"), "left half": named_mask("left"),
         "centre box": box_mask((7, 7, 21, 21))}  # fmt: skip


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return -10 * torch.log10((a - b).pow(2).mean((1, 2)).clamp_min(1e-10))


class Bench:
    def __init__(self, state: Path, data_dir: Path, n: int) -> None:
        self.scorer = Scorer(state, data_dir)
        st = StateDir(state)
        self.train, self.test = load_dataset(st, data_dir)
        self.dev = torch.device("cpu")
        self.editor = Editor.from_state(st, self.dev)
        self.completer = Completer.from_state(st, self.dev)
        self.student = self.completer.sampler
        self.n = n
        self.src = self.test.images[:n].float() / 255
        self.y = self.test.labels[:n]

    def classify(self, images01: torch.Tensor) -> torch.Tensor:
        return features(self.scorer.clf, images01.float(), self.dev)[1]

    # ---- class change ---------------------------------------------------------------------------
    def change(self, out: Path | None) -> None:
        n, ed = self.n, self.editor
        other = torch.randint(1, 10, (n,), generator=seeded(0, "bench-to"))
        to = (self.y + other) % 10
        fresh = []
        for r in range(8):
            img, _ = self.student.generate(to, SampleRequest(n=n, seed=100 + r))
            fresh.append(img.float() / 255)
        fresh = torch.stack(fresh)  # (8, n, 28, 28)
        far = (fresh - self.src).flatten(2).norm(dim=2).median(0).values  # per digit
        acc = float((self.classify(fresh.flatten(0, 1)) == to.repeat(8)).float().mean())
        print("| method | strength | steps | target class | median L2 to source | closer than "
              "fresh | identity PSNR |\n|---|---|---|---|---|---|---|")  # fmt: skip
        print(f"| fresh sample of the target class | - | 1 | {acc:.1%} | {float(far.median()):.2f}"
              " | - | - |")  # fmt: skip
        z0 = ed.latents(self.src)
        read = ed.read_class(z0)
        print(f"(the teacher reads {float((read == self.y).float().mean()):.1%} of the sources' "
              "classes right)")  # fmt: skip
        for s in STRENGTHS:
            for method in ("flowedit", "sdedit", "invert"):
                t0 = time.perf_counter()
                edited = self.method(method, z0, read, to, s)
                elapsed = time.perf_counter() - t0
                same = self.method(method, z0, read, self.y, s)
                dist = (edited - self.src).flatten(1).norm(dim=1)
                hit = float((self.classify(edited) == to).float().mean())
                closer = float((dist < far).float().mean())
                ident = float(psnr(same, self.src).mean())
                print(f"| {method} | {s:g} | {edit_steps(s)} | {hit:.1%} | "
                      f"{float(dist.median()):.2f} | {closer:.1%} | {ident:.2f} dB |", flush=True)  # fmt: skip
                append_json(out, {"part": "change", "method": method, "strength": s,
                                  "target": hit, "median_l2": float(dist.median()),
                                  "closer": closer, "identity_psnr": ident, "s": elapsed})  # fmt: skip

    @torch.inference_mode()
    def method(self, name, z0, read, to, s) -> torch.Tensor:
        ed = self.editor
        if name == "flowedit":
            return ed.change_class(self.src, to, s).images.float() / 255
        steps = edit_steps(s)
        ts = torch.linspace(s, 0.0, steps + 1).tolist()
        if name == "sdedit":
            eps = torch.randn(z0.shape, generator=seeded(0, "sdedit"))
            z = (1 - s) * z0 + s * eps
        else:  # invert as the class read, up to t = s
            z, v = z0, ed._velocity(read, EDIT_CFG)
            up = ts[::-1]
            for i in range(steps):
                z = z + (up[i + 1] - up[i]) * v(z, torch.full((len(z),), up[i]))
        v = ed._velocity(to, EDIT_CFG)
        for i in range(steps):
            z = z + (ts[i + 1] - ts[i]) * v(z, torch.full((len(z),), ts[i]))
        return ed.teacher.decode(z).float() / 255

    # ---- completion -----------------------------------------------------------------------------
    def complete(self, out: Path | None) -> None:
        n, comp = self.n, self.completer
        pool_labels = torch.arange(10).repeat_interleave(10_000)
        noise = torch.randn(len(pool_labels), *self.student.shape, generator=seeded(0, "oracle"))
        pool = torch.cat([comp._draw(z, y) for z, y in
                          zip(noise.split(10_000), pool_labels.split(10_000), strict=True)])  # fmt: skip
        print("| kept | ddream: best completion | its posterior | log-loss | oracle (100,000) | "
              "latent blend (kept share per cell) | kept pixels unchanged | hidden-part L2 between completions | "
              "s (1,000 digits) |\n|---|---|---|---|---|---|---|---|---|")  # fmt: skip
        for name, mask in MASKS.items():
            keep = mask.expand(n, -1, -1)
            t0 = time.perf_counter()
            res = comp.complete(self.src, keep, n=8, seed=0)
            elapsed = time.perf_counter() - t0
            top = self.classify(res.images[:, 0].float() / 255)
            ours = float((top == self.y).float().mean())
            post = float((res.posterior.argmax(1) == self.y).float().mean())
            nll = float(-res.posterior[torch.arange(n), self.y].clamp_min(1e-6).log().mean())
            src8 = (self.src * 255).round().to(torch.uint8)[:, None]
            kept = bool((res.images == src8)[keep[:, None].expand_as(res.images)].all())
            hidden = (~mask).flatten().float()
            flat = res.images.float().flatten(2) / 255 * hidden
            pair = torch.cdist(flat, flat)  # (n, 8, 8)
            off = pair[:, ~torch.eye(8, dtype=torch.bool)]
            spread, distinct = float(off.mean()), float((off > 0).all(1).float().mean())
            oracle = self.oracle(pool, pool_labels, mask)
            blend, share = self.blend(mask), self.blend(mask, share=True)
            print(f"| {name} | {ours:.1%} | {post:.1%} | {nll:.3f} | {oracle:.1%} | {blend:.1%} "
                  f"({share:.1%}) | "
                  f"{'yes' if kept else 'NO'} | {spread:.2f} ({distinct:.1%} all differ) | "
                  f"{elapsed:.0f} |", flush=True)  # fmt: skip
            append_json(out, {"part": "complete", "kept": name, "ours": ours, "posterior": post,
                              "nll": nll, "oracle": oracle, "blend": blend, "blend_share": share, "unchanged": kept,
                              "spread": spread, "distinct": distinct, "s": elapsed})  # fmt: skip

    def oracle(self, pool: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> float:
        """The best fit of 100,000 student digits on the kept pixels, pasted: its class's accuracy."""
        m = mask.flatten().float()
        pm, sm = pool * m, self.src.flatten(1) * m
        best = []
        for chunk in sm.split(250):
            err = (pm**2).sum(1)[:, None] - 2 * pm @ chunk.T + (chunk**2).sum(1)[None]
            best.append(err.argmin(0))
        drawn = pool[torch.cat(best)].view(-1, 1, 28, 28)
        done = paste(self.src, mask.expand(self.n, -1, -1), drawn)[:, 0]
        return float((self.classify(done.float() / 255) == self.y).float().mean())

    @torch.inference_mode()
    def blend(self, mask: torch.Tensor, share: bool = False, draws: int = 8, steps: int = 12):
        """diffusers' latent blend on the teacher: the source with its hidden pixels erased is
        encoded, and the latent cells the mask keeps (the mask resized to 2x2, nearest, as diffusers
        resizes it; or with `share`, each cell weighted by the share of its pixels kept) hold its
        noised latent at every step of the unconditioned ODE. 8 draws, the best fit kept."""
        ed = self.editor
        padded = torch.nn.functional.pad(mask.float(), (2, 2, 2, 2))[None, None]
        if share:
            inside = torch.nn.functional.pad(torch.ones(28, 28), (2, 2, 2, 2))[None, None]
            cells = torch.nn.functional.avg_pool2d(padded, 16) / torch.nn.functional.avg_pool2d(
                inside, 16)  # fmt: skip
        else:
            cells = torch.nn.functional.interpolate(padded, size=(2, 2), mode="nearest")
        z0 = ed.latents(self.src * mask).repeat(draws, 1, 1, 1)
        null = torch.full((len(z0),), ed.num_classes)
        v = ed._velocity(null, 1.0)
        eps = torch.randn(z0.shape, generator=seeded(0, "blend"))
        z = torch.randn(z0.shape, generator=seeded(1, "blend"))
        ts = torch.linspace(1.0, 0.0, steps + 1).tolist()
        for i in range(steps):
            z = z + (ts[i + 1] - ts[i]) * v(z, torch.full((len(z),), ts[i]))
            t = ts[i + 1]
            z = cells * ((1 - t) * z0 + t * eps) + (1 - cells) * z
        drawn = (ed.teacher.decode(z).float() / 255).view(draws, self.n, 28, 28)
        err = ((drawn - self.src) * mask).pow(2).flatten(2).sum(2)  # (draws, n)
        best = drawn[err.argmin(0), torch.arange(self.n)][:, None]
        done = paste(self.src, mask.expand(self.n, -1, -1), best)[:, 0]
        return float((self.classify(done.float() / 255) == self.y).float().mean())

    # ---- the posterior's width, on training digits ----------------------------------------------
    def sigma(self, out: Path | None, count: int = 300) -> None:
        src, y = self.train.images[:count].float() / 255, self.train.labels[:count]
        print("| kept | " + " | ".join(f"sigma {s:g}" for s in SIGMAS) + " |")
        print("|---|" + "---|" * len(SIGMAS))
        for name, mask in MASKS.items():
            _, cls, err = self.completer.search(src, mask.expand(count, -1, -1), 0, None, 8)
            cells = []
            for s in SIGMAS:
                post = self.completer.posterior(cls, err, s)
                nll = float(-post[torch.arange(count), y].clamp_min(1e-6).log().mean())
                acc = float((post.argmax(1) == y).float().mean())
                cells.append(f"{nll:.3f} ({acc:.1%})")
                append_json(out, {"part": "sigma", "kept": name, "sigma": s, "nll": nll})
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)

    # ---- time -------------------------------------------------------------------------------------
    def time(self, out: Path | None, state: Path) -> None:
        import ddream

        model = ddream.load(state, device="cpu")
        digit = self.test.images[:1]
        rows = {
            "edit (strength 0.8)": lambda: model.edit(digit, to=8),
            "complete (top half, K = 8)": lambda: model.complete(digit, keep="top", n=8),
        }
        for name, fn in rows.items():
            fn()
            times = []
            for _ in range(7):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            print(f"| {name} | {med * 1000:.0f} ms | {min(times) * 1000:.0f} ms |")
            append_json(out, {"part": "time", "what": name, "median_s": med})


SIGMAS = (0.25, 0.5, 0.75, 1.0, 1.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_state_dir(ap)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--part", nargs="+", default=["change", "complete", "sigma", "time"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.manual_seed(0)
    bench = Bench(args.state, args.data_dir, args.n)
    for part in args.part:
        print(f"\n## {part}")
        if part == "time":
            bench.time(args.json, args.state)
        else:
            getattr(bench, part)(args.json)


if __name__ == "__main__":
    main()
