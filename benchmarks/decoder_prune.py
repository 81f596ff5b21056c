"""A cheaper sampling decoder by pruning: the trained decoder without a residual block, fine-tuned
from the rest of its weights on the frozen encoder's latents (so the DiT and the student stay valid).
Prints the fused decoders' digits/s (best of N, one process) and the pruned decoder's test PSNR
(28x28, against the real test digits) as it fine-tunes, then its reconstruction FID (`ddream
eval`'s classifier features, decoded test latents against the test digits) beside the trained one's.

    python benchmarks/decoder_prune.py --state RUNS/q3/default --data-dir DIR \
        [--drop 1 [3 ...]] [--epochs 4] [--target real|imitate] [--old-state RUNS/q2/default]

`--drop L` removes the residual blocks at level L (0: 32x32, 1: 16x16, ..., 4: 2x2). `--target real`
fine-tunes towards the real digits (L1 + MSE, which favours PSNR over the GAN-trained look);
`imitate` towards the trained decoder's own output, as `ddream distill`'s small decoder learns.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import Scorer, add_state_dir, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_state_dir(ap)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--old-state", type=Path, help="also time this state dir's decoder")
    ap.add_argument("--drop", type=int, nargs="+", default=[1])
    ap.add_argument("--target", choices=("real", "imitate"), default="real")
    ap.add_argument("--epochs", type=float, default=4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--repeats", type=int, default=12)
    args = ap.parse_args()

    from ddream.artifacts import load_ae, load_latents
    from ddream.data import load_split, to_model, to_unit
    from ddream.metrics import frechet_distance, psnr
    from ddream.models.autoencoder import Decoder
    from ddream.models.fused_decoder import Chunked, FusedDecoder
    from ddream.stages.evaluate import features
    from ddream.state import StateDir

    torch.manual_seed(0)
    cpu = torch.device("cpu")
    state = StateDir(args.state)
    ae, _ = load_ae(state, cpu)
    train, _ = load_latents(state, "train")
    test, _ = load_latents(state, "test")
    real_train = load_split(args.data_dir, "train")
    real_test = load_split(args.data_dir, "test")
    blocks = list(ae.cfg.blocks)
    for level in args.drop:
        blocks[level] = 0
    pruned = Decoder(dataclasses.replace(ae.cfg, blocks=tuple(blocks)))
    missing = pruned.load_state_dict(ae.decoder.state_dict(), strict=False)
    print(f"{ae.cfg.io} decoder, blocks {ae.cfg.blocks} -> {tuple(blocks)}; dropped weights: "
          f"{len(missing.unexpected_keys)} tensors")  # fmt: skip

    decoders = {f"trained ({ae.cfg.io})": ae.decoder}
    if args.old_state:
        old, _ = load_ae(StateDir(args.old_state), cpu)
        decoders = {f"trained ({old.cfg.io}, {args.old_state.name})": old.decoder, **decoders}
    decoders[f"pruned, blocks {tuple(blocks)}"] = pruned
    z = test.latents[:4096]
    print("\n| decoder (fused) | digits/s |\n| --- | --- |")
    for name, decoder in decoders.items():
        fused = Chunked(FusedDecoder(decoder.eval()), 256)
        print(f"| {name} | {len(z) / best(lambda f=fused: f(z), args.repeats):,.0f} |", flush=True)

    @torch.inference_mode()
    def test_psnr(decoder: torch.nn.Module) -> float:
        out = torch.cat([decoder(part) for part in test.latents.split(1000)])
        return float(psnr(to_unit(out), real_test.images.float() / 255).mean())

    print(f"\ntest PSNR: the trained decoder {test_psnr(ae.decoder.eval()):.2f} dB; pruned, "
          f"before fine-tuning {test_psnr(pruned.eval()):.2f} dB")  # fmt: skip
    print("\n| fine-tuning epochs | seconds | pruned test PSNR (dB) |\n| --- | --- | --- |")
    opt = torch.optim.AdamW(pruned.parameters(), lr=args.lr, weight_decay=0.0)
    n = len(train.latents)
    steps = int(args.epochs * n / args.batch)
    gen = torch.Generator().manual_seed(0)
    marks = {round(steps * k / 4) for k in range(1, 5)}
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        pruned.train()
        idx = torch.randint(0, n, (args.batch,), generator=gen)
        if args.target == "real":
            target = to_model(real_train.images[idx])
        else:
            with torch.no_grad():
                target = ae.decoder.eval()(train.latents[idx])
        out = pruned(train.latents[idx])
        loss = F.l1_loss(out, target) + F.mse_loss(out, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step in marks:
            seconds = time.perf_counter() - t0
            print(f"| {step * args.batch / n:.1f} | {seconds:.0f} | {test_psnr(pruned.eval()):.2f} |",
                  flush=True)  # fmt: skip

    scorer = Scorer(args.state, args.data_dir)
    with torch.inference_mode():
        for name, decoder in (("trained", ae.decoder), ("pruned", pruned)):
            out = torch.cat([decoder.eval()(part) for part in test.latents.split(1000)])
            fid = frechet_distance(scorer.real, features(scorer.clf, to_unit(out), cpu)[0])
            print(f"reconstruction FID, {name} decoder: {fid:.3f}")


if __name__ == "__main__":
    main()
