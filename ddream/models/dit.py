"""A small class-conditional DiT (arXiv 2212.09748) over the 2x2 latent, conditioned through adaLN-Zero.

Timestep and class embeddings are summed into one conditioning vector c. Every block regresses a
shift, scale and gate for its attention and MLP from c; those regressions and the final layer start
at zero, so the untrained network is the identity on its residual stream and outputs zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ddream.config import DiTConfig
from ddream.flow import cfg_mix


# ---- embedding layers ------------------------------------------------------------------------
class TimestepEmbedder(nn.Module):
    """Scalar t in [0, 1] -> vector, through sinusoidal frequencies and an MLP."""

    def __init__(self, width: int, freq_dim: int = 128) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
        args = (t.float() * 1000.0)[:, None] * freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class LabelEmbedder(nn.Module):
    """Class -> vector; index `num_classes` is the null class used for classifier-free guidance."""

    def __init__(self, num_classes: int, width: int) -> None:
        super().__init__()
        self.table = nn.Embedding(num_classes + 1, width)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.table(y)


# ---- core model ------------------------------------------------------------------------------
def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    """Multi-head self-attention over the latent's tokens."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        if n == 1:
            # softmax over a single key is 1, so attention returns the values: skip q, k and the
            # attention call (exact; a third of the qkv projection's work)
            v = F.linear(x, self.qkv.weight[2 * c :], self.qkv.bias[2 * c :])
            return self.proj(v)
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class DiTBlock(nn.Module):
    """Pre-norm attention + MLP, each gated and modulated by adaLN-Zero."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, gelu: str) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden),
            nn.GELU(approximate="tanh" if gelu == "tanh" else "none"),
            nn.Linear(hidden, width),
        )
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`c` holds one conditioning vector per distinct (t, class); `rows` maps each row of x to its
        vector (None: one vector per row)."""
        mod = self.adaLN_modulation(c)
        if rows is not None:
            mod = mod.index_select(0, rows)
        sh1, sc1, g1, sh2, sc2, g2 = mod.chunk(6, dim=1)
        x = x + g1[:, None] * self.attn(modulate(self.norm1(x), sh1, sc1))
        return x + g2[:, None] * self.mlp(modulate(self.norm2(x), sh2, sc2))


class FinalLayer(nn.Module):
    """adaLN-modulated norm, then a linear map back to patch pixels."""

    def __init__(self, width: int, patch_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(width, patch_dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        mod = self.adaLN_modulation(c)
        if rows is not None:
            mod = mod.index_select(0, rows)
        shift, scale = mod.chunk(2, dim=1)
        return self.linear(modulate(self.norm(x), shift, scale))


def _per_row(scale: float | torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A guidance scale (one, or one a row) as one float a row, on y's device."""
    return torch.as_tensor(scale, dtype=torch.float32, device=y.device).reshape(-1).expand(len(y))


class DiT(nn.Module):
    """Velocity network v(x_t, t, y) for rectified flow on (B, C, S, S) latents."""

    def __init__(self, cfg: DiTConfig, guidance_input: bool = False) -> None:
        super().__init__()
        if cfg.latent_size % cfg.patch_size:
            raise ValueError(
                f"patch size {cfg.patch_size} does not divide latent size {cfg.latent_size}"
            )
        if cfg.width % cfg.heads:
            raise ValueError(f"width {cfg.width} is not a multiple of heads {cfg.heads}")
        self.cfg = cfg
        p, ch = cfg.patch_size, cfg.latent_channels
        self.grid = cfg.latent_size // p
        patch_dim = ch * p * p
        self.x_embed = nn.Linear(patch_dim, cfg.width)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid, cfg.width))
        self.t_embed = TimestepEmbedder(cfg.width)
        self.y_embed = LabelEmbedder(cfg.num_classes, cfg.width)
        # the guidance-conditioned student's dial: w - 1 embedded like t and added to the
        # conditioning; its last layer starts at zero, so a new student starts as its teacher
        self.w_embed = TimestepEmbedder(cfg.width) if guidance_input else None
        self.blocks = nn.ModuleList(
            DiTBlock(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.gelu) for _ in range(cfg.depth)
        )
        self.final = FinalLayer(cfg.width, patch_dim)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """All initialisation in one place, adaLN-Zero's zeros included."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.y_embed.table.weight, std=0.02)
        for layer in (self.t_embed.mlp[0], self.t_embed.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)
        if self.w_embed is not None:
            nn.init.normal_(self.w_embed.mlp[0].weight, std=0.02)
            nn.init.zeros_(self.w_embed.mlp[2].weight)
            nn.init.zeros_(self.w_embed.mlp[2].bias)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        b, ch, _, _ = x.shape
        p, g = self.cfg.patch_size, self.grid
        x = x.view(b, ch, g, p, g, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, g * g, ch * p * p)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        p, g, ch = self.cfg.patch_size, self.grid, self.cfg.latent_channels
        x = x.view(b, g, g, ch, p, p).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(b, ch, g * p, g * p)

    @classmethod
    def started_from(cls, teacher: DiT, guidance_input: bool, device: torch.device) -> DiT:
        """A copy of `teacher` (taking w as an input if asked, its embedding at zero: no effect
        yet), as the student and distribution matching's fake model start."""
        model = cls(teacher.cfg, guidance_input=guidance_input).to(device)
        missing, _ = model.load_state_dict(teacher.state_dict(), strict=False)
        assert all(k.startswith("w_embed.") for k in missing), missing
        return model

    @property
    def guidance_input(self) -> bool:
        """Whether the guidance scale w is an input (the guidance-conditioned student)."""
        return self.w_embed is not None

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor,
        w: torch.Tensor | None = None,
        *,
        dedupe: bool = True,
    ) -> torch.Tensor:
        """v(x, t, y), and w (one guidance scale a row) for a model that takes guidance as an input."""
        if (w is None) == self.guidance_input:
            raise ValueError("w is an input of the guidance-conditioned student, and of it alone")
        h = self.x_embed(self.patchify(x)) + self.pos_embed
        rows = None
        if dedupe and len(y) > 1:
            # Sampling batches (and the one-step student's training batches, all at t = 1) share a
            # few (t, class) pairs: embed them and regress every block's modulation once per
            # distinct pair, not once per row (exact, gradients included; a third of the work).
            # A rectified-flow training batch draws a t per row, so its caller passes
            # dedupe=False: looking for shared pairs there would find none.
            keys = [t.float(), y.float()] + ([] if w is None else [w.float()])
            pairs, inverse = torch.unique(torch.stack(keys, dim=1), dim=0, return_inverse=True)
            if 2 * len(pairs) <= len(y):
                t, y, rows = pairs[:, 0].to(t.dtype), pairs[:, 1].long(), inverse
                w = None if w is None else pairs[:, 2]
        c = self.t_embed(t) + self.y_embed(y)
        if w is not None:
            c = c + self.w_embed(w - 1.0)
        for block in self.blocks:
            h = block(h, c, rows)
        return self.unpatchify(self.final(h, c, rows))

    def forward_with_cfg(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, cfg_scale: float | torch.Tensor
    ) -> torch.Tensor:
        """Guided velocity: the conditional and null passes as one batched forward; the scale a
        float or one per row. A model that takes guidance as an input gets it as w in one pass."""
        if self.guidance_input:
            return self(x, t, y, _per_row(cfg_scale, y))
        if isinstance(cfg_scale, float) and cfg_scale == 1.0:
            return self(x, t, y)
        null = torch.full_like(y, self.cfg.num_classes)
        v = self(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]))
        v_cond, v_null = v.chunk(2)
        if isinstance(cfg_scale, torch.Tensor):
            cfg_scale = cfg_scale.view(-1, *([1] * (v.dim() - 1))).to(v)
        return cfg_mix(v_cond, v_null, cfg_scale)


class AutoGuided(nn.Module):
    """The DiT guided by a weaker copy of itself as well as by its null class (autoguidance, Karras
    et al. 2024, arXiv 2406.02507): the weak model is the same run's EMA weights early in training,
    which errs where the DiT errs, only more, so stepping away from it mends those errors without
    narrowing the classes as classifier-free guidance does:
        v = v_cond + (a - 1) (v_cond - v_weak) + (w - 1) (v_cond - v_null)
    with a the autoguidance scale (`scale`) and w classifier-free guidance (a float or one a row,
    as `DiT.forward_with_cfg` takes it). a = 1 is the DiT's own guided velocity."""

    guidance_input = False

    def __init__(self, model: DiT, weak: DiT, scale: float) -> None:
        super().__init__()
        self.model, self.weak, self.scale = model, weak, scale
        self.cfg = model.cfg

    def forward_with_cfg(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, cfg_scale: float | torch.Tensor
    ) -> torch.Tensor:
        if isinstance(cfg_scale, float) and cfg_scale == 1.0:
            v_cond = v = self.model(x, t, y)
        else:
            null = torch.full_like(y, self.cfg.num_classes)
            v_cond, v_null = self.model(
                torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null])
            ).chunk(2)
            if isinstance(cfg_scale, torch.Tensor):
                cfg_scale = cfg_scale.view(-1, *([1] * (v_cond.dim() - 1))).to(v_cond)
            v = cfg_mix(v_cond, v_null, cfg_scale)
        return v + (self.scale - 1.0) * (v_cond - self.weak(x, t, y))
