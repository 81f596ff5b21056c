"""Quality and speed benchmark: the default preset against the digitdreamer preset, side by side, on real MNIST.

Each preset trains its own reference schedule (`ddream all`, timed, peak RSS taken) from an empty state
dir; both are scored by `ddream eval` (10,000 samples, balanced) with one shared feature extractor.
Then, in this process and with the same extractor: FID, class accuracy, precision, recall and digits/s
(decoding included) of both presets at 1, 2, 4 and 12 Euler steps and at their default settings, and a
guidance sweep of the default model. Optionally (`--ttq A,F,D`) the default preset on a short schedule
(A augmented + F fine-tune AE epochs, D DiT epochs): its wall time to reach the digitdreamer preset's
final FID. Prints Markdown for BENCHMARKS.md, keeps every number in WORK/results.json, and writes a grid
and a GIF of each preset into docs/quality/.

    python benchmarks/quality.py --data-dir DIR --ttq 4,1,3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch
from common import Scorer, ddream, digits_per_s, draw, timed_ddream

ROOT = Path(__file__).resolve().parents[1]
STEPS = ((1, "euler"), (2, "euler"), (4, "euler"), (12, "euler"))
CFGS = (1.0, 1.25, 1.5, 2.0)


def run_all(state: Path, data: str, *extra: str) -> tuple[float, float]:
    """`ddream all` from an empty state dir: (wall seconds, peak RSS in MiB of that process)."""
    return timed_ddream(
        "all", "--data-dir", data, "--state-dir", str(state), "--device", "cpu", "--quiet", *extra
    )


def evaluate(state: Path, data: str, n: int, *extra: str) -> dict:
    return json.loads(
        ddream(
            "eval",
            "--state-dir",
            str(state),
            "--data-dir",
            data,
            "--n",
            str(n),
            "--device",
            "cpu",
            "--json",
            *extra,
            capture=True,
        )
    )


def share_classifier(src: Path, dst: Path) -> None:
    """One feature extractor for every state dir, so FIDs are comparable."""
    clf = src / "eval" / "classifier.safetensors"
    if clf.exists() and src != dst:
        (dst / "eval").mkdir(parents=True, exist_ok=True)
        shutil.copy(clf, dst / "eval" / "classifier.safetensors")


def train_seconds(state: Path) -> dict[str, float]:
    stages = json.loads((state / "state.json").read_text())["stages"]
    out = {
        name: stages[name]["wall_time"]
        for name in ("ae", "encode", "dit", "distill")
        if name in stages
    }
    out["total"] = sum(out.values())
    out["ae_images_per_s"] = stages["ae"]["metrics"]["images_per_s"]
    out["dit_latents_per_s"] = stages["dit"]["metrics"]["images_per_s"]
    out["psnr_by_epoch"] = [h["test_psnr"] for h in stages["ae"]["history"]]
    return out


def step_table(state: Path, data: str, n: int, settings: list[tuple]) -> list[dict]:
    """For each (steps, solver, cfg) (None = the model's default): scores on n samples and digits/s
    (decoding included, best of 3 timed runs after a warm-up)."""
    from ddream.sampler import Sampler, SampleRequest
    from ddream.stages.evaluate import balanced_labels
    from ddream.state import StateDir

    cpu = torch.device("cpu")
    st = StateDir(state)
    scorer = Scorer(state, Path(data))
    sampler = Sampler.from_state(st, cpu, "teacher")  # the settings are the teacher's ODE
    labels = balanced_labels(n)
    rows = []
    for steps, solver, cfg in settings:
        req = sampler.resolve(SampleRequest(n=n, steps=steps, solver=solver, cfg=cfg))
        g = scorer.score(sampler, req, n)
        speed = digits_per_s(sampler, labels, req, repeats=3)
        rows.append(
            {
                "steps": req.steps,
                "solver": req.solver,
                "cfg": req.cfg,
                "default": steps is None and cfg is None,
                **g.__dict__,
                "digits_per_s": speed,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ddream-bench-quality"))
    ap.add_argument(
        "--presets",
        nargs="*",
        default=["default", "digitdreamer"],
        help="train and score these (results of others are kept from WORK/results.json)",
    )
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--sweep-n", type=int, default=2_000)
    ap.add_argument("--ttq", default="", help="A,F,D: time-to-quality run of the default preset")
    ap.add_argument(
        "--fast", action="store_true", help="also time and score `ddream all --profile fast`"
    )
    ap.add_argument("--profile", default="reference", help="quick: a smoke test of this script")
    ap.add_argument(
        "--docs",
        type=Path,
        help="where the grids and GIFs go (default: docs/quality, or WORK when quick)",
    )
    args = ap.parse_args()
    data = str(args.data_dir)
    args.work.mkdir(parents=True, exist_ok=True)
    # a smoke run's pictures stay out of the README's docs/
    out_dir = args.docs or (ROOT / "docs" / "quality" if args.profile == "reference" else args.work)
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = args.work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    first = args.work / "default"

    def save() -> None:
        results_path.write_text(json.dumps(results, indent=1))

    for preset in args.presets:
        state = args.work / preset
        shutil.rmtree(state, ignore_errors=True)
        total, rss = run_all(state, data, "--preset", preset, "--profile", args.profile)
        share_classifier(first, state)
        res = {
            "all_seconds": total,
            "peak_rss_mib": rss,
            "train": train_seconds(state),
            "eval": evaluate(state, data, args.n),
        }
        share_classifier(state, first)  # the first preset scored trains the extractor
        settings = [(None, None, None)] + [(s, sol, None) for s, sol in STEPS]
        if preset == "default":
            settings += [(None, None, c) for c in CFGS]
        res["steps"] = step_table(state, data, args.sweep_n, settings)
        results[preset] = res
        save()
        draw(state, out_dir / f"{preset}.png", out_dir / f"{preset}.gif")

    if args.fast:
        state = args.work / "fast"
        shutil.rmtree(state, ignore_errors=True)
        total, rss = run_all(state, data, "--profile", "fast")
        share_classifier(first, state)
        results["fast"] = {
            "all_seconds": total,
            "peak_rss_mib": rss,
            "train": train_seconds(state),
            "eval": evaluate(state, data, args.n),
        }
        save()
    if args.ttq:
        a, f, d = args.ttq.split(",")
        state = args.work / "ttq"
        shutil.rmtree(state, ignore_errors=True)
        total, rss = run_all(
            state,
            data,
            "--profile",
            args.profile,
            "--ae-epochs",
            a,
            "--finetune-epochs",
            f,
            "--dit-epochs",
            d,
        )
        share_classifier(first, state)
        results["ttq"] = {
            "schedule": args.ttq,
            "all_seconds": total,
            "peak_rss_mib": rss,
            "train": train_seconds(state),
            "eval": evaluate(state, data, args.n),
        }
        save()
    report(results, args)


def report(results: dict, args: argparse.Namespace) -> None:
    print(
        f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}\n"
    )
    print(
        "| preset | PSNR (dB) | SSIM | FID | class acc. | precision | recall | train-ae | encode | "
        "train-dit | distill | `ddream all` | peak RSS | sampling (digits/s, eval's draw) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for preset in ("digitdreamer", "default"):
        if preset not in results:
            continue
        res = results[preset]
        e, t = res["eval"], res["train"]
        g, r = e["generation"], e["reconstruction"]
        # the model `ddream eval` scored (the student once distilled) and the rate it drew at
        speed = e["digits_per_s"]
        model = f"{e.get('model', 'teacher')}, {e['steps']} {e['solver']} step(s), cfg {e['cfg']}"
        print(
            f"| {preset} ({model}) | {r['psnr']:.2f} | "
            f"{r['ssim']:.4f} | {g['fid']:.2f} | {g['class_accuracy']:.2%} | {g['precision']:.3f} | "
            f"{g['recall']:.3f} | {t['ae']:.0f} s | {t['encode']:.0f} s | {t['dit']:.0f} s | "
            f"{t.get('distill', 0):.0f} s | "
            f"{res['all_seconds']:.0f} s | {res['peak_rss_mib']:.0f} MiB | {speed:.0f} |"
        )
    any_eval = next(iter(v["eval"] for k, v in results.items() if k in ("default", "digitdreamer")))
    fl = any_eval["real_floor"]
    print(
        f"| real-data floor (held-out digits) | | | {fl['fid']:.2f} | {fl['class_accuracy']:.2%} | "
        f"{fl['precision']:.3f} | {fl['recall']:.3f} | | | | | | | |"
    )
    print(
        f"\nExtractor: {any_eval['extractor']}, test accuracy {any_eval['extractor_test_accuracy']:.2%}; "
        f"{args.n:,} samples per preset."
    )
    if "default" in results and "digitdreamer" in results:
        d0, d1 = results["digitdreamer"], results["default"]
        e0, e1 = d0["eval"], d1["eval"]
        print(
            f"\nDefault vs digitdreamer: FID ratio {e1['generation']['fid'] / e0['generation']['fid']:.3f}; "
            f"PSNR {e1['reconstruction']['psnr'] - e0['reconstruction']['psnr']:+.2f} dB; "
            f"`ddream all` wall-time ratio {d1['all_seconds'] / d0['all_seconds']:.2f} "
            f"({d1['all_seconds']:.0f} s / {d0['all_seconds']:.0f} s); "
            f"AE images/s {d1['train']['ae_images_per_s']:.0f} vs {d0['train']['ae_images_per_s']:.0f}"
        )
        if "fast" in results:
            q = results["fast"]
            g = q["eval"]["generation"]
            print(
                f"\nThe fast profile: `ddream all --profile fast` {q['all_seconds']:.0f} s "
                f"({q['all_seconds'] / d0['all_seconds']:.2f} of the digitdreamer preset's), FID "
                f"{g['fid']:.2f} (digitdreamer's final: {e0['generation']['fid']:.2f}), class accuracy "
                f"{g['class_accuracy']:.2%}, recall {g['recall']:.3f}, PSNR "
                f"{q['eval']['reconstruction']['psnr']:.2f} dB, peak RSS {q['peak_rss_mib']:.0f} MiB; "
                + ", ".join(
                    f"{k} {v:.0f} s"
                    for k, v in q["train"].items()
                    if k in ("ae", "encode", "dit", "distill")
                )
            )
        if "ttq" in results:
            q = results["ttq"]
            print(
                f"\nTime to quality: the default preset on a short schedule ({q['schedule']}: AE augmented, "
                f"fine-tune, DiT epochs) reaches FID {q['eval']['generation']['fid']:.2f} (digitdreamer's final: "
                f"{e0['generation']['fid']:.2f}), PSNR {q['eval']['reconstruction']['psnr']:.2f} dB, in "
                f"{q['all_seconds']:.0f} s = {q['all_seconds'] / d0['all_seconds']:.2f} of the digitdreamer "
                f"preset's {d0['all_seconds']:.0f} s."
            )
    for preset, res in results.items():
        if preset in ("default", "digitdreamer"):
            print(
                f"\n{preset}: AE test PSNR by epoch: "
                + ", ".join(f"{p:.2f}" for p in res["train"]["psnr_by_epoch"])
            )
    print(
        f"\nSampling by step count, {args.sweep_n:,} samples per row, digits/s decoding included (best of 3):\n"
    )
    print("| preset | solver, steps | cfg | FID | class acc. | precision | recall | digits/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for preset in ("digitdreamer", "default"):
        for row in results.get(preset, {}).get("steps", []):
            mark = " (default)" if row["default"] else ""
            print(
                f"| {preset} | {row['solver']} {row['steps']}{mark} | {row['cfg']} | {row['fid']:.2f} | "
                f"{row['class_accuracy']:.2%} | {row['precision']:.3f} | {row['recall']:.3f} | "
                f"{row['digits_per_s']:.0f} |"
            )


if __name__ == "__main__":
    main()
