"""Image and distribution quality numbers: PSNR and SSIM (at 28x28, on [0, 1] images), and FID,
precision and recall on the features of a classifier (ddream trains its own: Inception weights cannot
be assumed offline, and an MNIST classifier's features are what the field uses for digits)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ddream.runtime import ROWS


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of two (N, H, W) batches in [0, 1]; capped at 100 dB for exact matches."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).clamp(max=100.0)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM of two (N, H, W) batches in [0, 1], Gaussian window, 'valid' borders.

    A 7-pixel window (not 11) because the images are 28 pixels wide."""
    c1, c2 = 0.01**2, 0.03**2
    x = torch.arange(window, dtype=torch.float64) - (window - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = (g / g.sum()).float()
    kernel = (g[:, None] * g[None, :])[None, None].to(a.device)
    a, b = a.float()[:, None], b.float()[:, None]

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).flatten(1).mean(1)


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between two feature sets (N, D): |mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2))."""
    real, fake = real.double(), fake.double()
    mu_r, mu_f = real.mean(0), fake.mean(0)
    s_r, s_f = torch.cov(real.T), torch.cov(fake.T)
    # tr((S_r S_f)^(1/2)) = sum of sqrt(eig(S_r^(1/2) S_f S_r^(1/2))), a symmetric PSD matrix.
    vals, vecs = torch.linalg.eigh(s_r)
    root_r = vecs @ torch.diag(vals.clamp_min(0).sqrt()) @ vecs.T
    middle = torch.linalg.eigvalsh(root_r @ s_f @ root_r).clamp_min(0).sqrt().sum()
    return float((mu_r - mu_f).pow(2).sum() + s_r.trace() + s_f.trace() - 2 * middle)


def _kth_radius(x: torch.Tensor, k: int, chunk: int = ROWS["distances"]) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    out = []
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i : i + chunk], x)
        out.append(d.kthvalue(k + 1, dim=1).values)  # +1: the point itself is at distance 0
    return torch.cat(out)


def _covered(
    points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = ROWS["distances"]
) -> torch.Tensor:
    """For each point: does it fall inside any centre's ball?"""
    hits = []
    for i in range(0, len(points), chunk):
        d = torch.cdist(points[i : i + chunk], centres)
        hits.append((d <= radii[None]).any(dim=1))
    return torch.cat(hits)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifolds."""
    real, fake = real.float(), fake.float()
    precision = _covered(fake, real, _kth_radius(real, k)).float().mean()
    recall = _covered(real, fake, _kth_radius(fake, k)).float().mean()
    return float(precision), float(recall)
