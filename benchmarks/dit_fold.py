"""What folding the student's conditioning into its weights would buy (measured, not built).

At a fixed t (the one-step student samples at t = 1 only) every row of one class shares its adaLN
shift, scale and gate. They fold into per-class matrices: attention on one token is proj(W_v x), so a
block's attention branch becomes LN(h) @ A_c + a_c with A_c = diag(g1) W_o W_v diag(1 + sc1); the
MLP's first layer takes the scale and shift, its second the gate; the final layer takes its
modulation. Rows are grouped by class. Prints the largest difference from the DiT's own forward and
both rates (rows/s, slices of 1,024, best of N).

    python benchmarks/dit_fold.py --state RUNS/q3/default [--n 20000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from common import best


@torch.no_grad()
def fold(model, t: float, classes: int = 10):
    width = model.cfg.width
    c = model.t_embed(torch.full((classes,), t)) + model.y_embed(torch.arange(classes))
    blocks = []
    for b in model.blocks:
        sh1, sc1, g1, sh2, sc2, g2 = b.adaLN_modulation(c).chunk(6, dim=1)  # (classes, width)
        w_v, b_v = b.attn.qkv.weight[2 * width :], b.attn.qkv.bias[2 * width :]
        w_ov = b.attn.proj.weight @ w_v
        a = (g1[:, :, None] * w_ov[None] * (1 + sc1)[:, None, :]).transpose(1, 2).contiguous()
        a_bias = g1 * (sh1 @ w_ov.T + b.attn.proj.weight @ b_v + b.attn.proj.bias)
        w1, b1, w2, b2 = b.mlp[0].weight, b.mlp[0].bias, b.mlp[2].weight, b.mlp[2].bias
        m1 = (w1[None] * (1 + sc2)[:, None, :]).transpose(1, 2).contiguous()
        m2 = (g2[:, :, None] * w2[None]).transpose(1, 2).contiguous()
        blocks.append((a, a_bias, m1, sh2 @ w1.T + b1, m2, g2 * b2))
    shift, scale = model.final.adaLN_modulation(c).chunk(2, dim=1)
    w_f = model.final.linear.weight
    final = (w_f[None] * (1 + scale)[:, None, :]).transpose(1, 2).contiguous()
    return blocks, final, shift @ w_f.T + model.final.linear.bias


@torch.inference_mode()
def folded_forward(model, folded, x, y, chunk: int = 1024):
    blocks, final, final_bias = folded
    width = model.cfg.width
    form = model.blocks[0].mlp[1].approximate  # the GELU the model learned with ("none": exact)
    order = torch.argsort(y, stable=True)
    tokens, ys = model.patchify(x[order])[:, 0], y[order]
    outs, start = [], 0
    for k, count in enumerate(torch.bincount(ys, minlength=len(final)).tolist()):
        for s0 in range(start, start + count, chunk):
            h = model.x_embed(tokens[s0 : min(s0 + chunk, start + count)]) + model.pos_embed[0, 0]
            for a, a_bias, m1, b1, m2, b2 in blocks:
                h = torch.addmm(h + a_bias[k], F.layer_norm(h, (width,), eps=1e-6), a[k])
                u = torch.addmm(b1[k], F.layer_norm(h, (width,), eps=1e-6), m1[k])
                h = torch.addmm(h + b2[k], F.gelu(u, approximate=form), m2[k])
            norm = F.layer_norm(h, (width,), eps=1e-6)
            outs.append(torch.addmm(final_bias[k], norm, final[k]))
        start += count
    out = torch.empty_like(x)
    out[order] = model.unpatchify(torch.cat(outs)[:, None])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--state", type=Path, required=True, help="a state dir with a distilled student"
    )
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()

    from ddream.artifacts import load_student
    from ddream.state import StateDir

    torch.manual_seed(0)
    model = load_student(StateDir(args.state), torch.device("cpu")).model.eval()
    n = args.n
    x = torch.randn(n, model.cfg.latent_channels, 2, 2)
    y, t1 = torch.arange(n) % 10, torch.ones(n)
    folded = fold(model, 1.0)

    def plain() -> torch.Tensor:
        parts = zip(x.split(1024), t1.split(1024), y.split(1024), strict=True)
        return torch.cat([model(*part) for part in parts])

    with torch.inference_mode():
        diff = (plain() - folded_forward(model, folded, x, y)).abs().max().item()
        t_plain = best(plain, args.repeats)
        t_fold = best(lambda: folded_forward(model, folded, x, y), args.repeats)
    print(f"largest difference {diff:.1e}; the DiT {n / t_plain:,.0f} rows/s, folded "
          f"{n / t_fold:,.0f} rows/s: {t_plain / t_fold:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
