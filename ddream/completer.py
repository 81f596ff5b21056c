"""Completing a digit from the pixels a person kept, fitted in pixels through the decoder: a 2x2 latent
of 16x16-pixel cells cannot hold a mask, so the search runs over the one-step student's digits, which a
CPU draws by the thousand in a fraction of a second (benchmarks/edit.py measured it against a
brute-force search over 100,000 digits and against blending latents):

1. POOL noises, the classes in turn (or all of `cls`), drawn and scored by their squared error on
   the kept pixels;
2. the best MEMBERS of each class kept, and each moved ROUNDS times by preconditioned Crank-Nicolson
   proposals (z' = sqrt(1 - b^2) z + b xi, which keep the noise's Gaussian prior), CHILDREN a round,
   the best child kept when it fits better;
3. the class posterior: each class's members weighted by exp(-error / (2 FIT_SIGMA^2)); the K
   completions: the best fit of the likeliest class, then the best-fitting other members (one per
   member, so no two are the same digit);
4. the kept pixels pasted back exactly, the seam hidden by carrying the kept pixels' mismatch a couple
   of pixels into the completed part (fading with distance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ddream.editor import CLI_NAMES
from ddream.errors import BadInput
from ddream.limits import whole
from ddream.runtime import seeded
from ddream.sampler import Sampler, SampleRequest
from ddream.state import StateDir

POOL = 2048  # first draws per digit
MEMBERS = 6  # kept per class for the search (all MEMBERS * 10 of `cls` with a class given)
ROUNDS = (0.5, 0.3, 0.2, 0.1)  # each round's proposal step b
CHILDREN = 8  # proposals per member a round
FIT_SIGMA = 1.0  # the likelihood's width: lowest log-loss on training digits (benchmarks/edit.py)
SEAM_PX = 1.5  # how far (pixels) the kept pixels' mismatch is carried into the completion
HIDDEN_GREY = 96  # how pictures show the hidden part
MAX_COMPLETIONS = 64
DIGITS_PER_CALL = 16  # digits searched at once: ~0.5 GB of candidate pixels


@dataclass
class Completion:
    images: torch.Tensor  # uint8 (N, K, 28, 28), the kept pixels exactly the source's
    labels: torch.Tensor  # (N, K) the class each completion was drawn as
    posterior: torch.Tensor | None  # (N, 10) p(class | kept pixels); None when a class was given
    errors: torch.Tensor  # (N, K) squared error of each completion's draw on the kept pixels


class Completer:
    """Draws digits with a Sampler (the student, or the teacher where there is no student) and
    searches them for those that fit the kept pixels."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.num_classes = sampler.dit.cfg.num_classes

    @classmethod
    def from_state(cls, state: StateDir, device: torch.device, dtype: str = "auto") -> Completer:
        return cls(Sampler.from_state(state, device, "auto", dtype))

    def _draw(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Digits for these noises and labels, float (M, 784) in [0, 1]."""
        out = []
        for z, y in zip(noise.split(8192), labels.split(8192), strict=True):
            images, _ = self.sampler.generate(y, SampleRequest(n=len(y)), z)
            out.append(images.flatten(1).float().div_(255))
        return torch.cat(out)

    @torch.inference_mode()
    def complete(
        self,
        digits: torch.Tensor,
        keep: torch.Tensor,
        n: int = 8,
        seed: int = 0,
        cls: int | None = None,
        names: dict[str, str] = CLI_NAMES,
    ) -> Completion:
        """K completions of each digit (float (N, 28, 28) in [0, 1]) from its kept pixels (bool
        (N, 28, 28)): first the best fit of the likeliest class, then the rest by fit."""
        n = whole(n, names["n"], 1, MAX_COMPLETIONS)
        if cls is not None:
            cls = whole(cls, names["cls"], 0, self.num_classes - 1)
        keep = keep.expand(len(digits), -1, -1) if keep.dim() == 2 else keep
        if keep.shape != digits.shape:
            raise BadInput(f"give one mask, or one for each of the {len(digits)} digits")
        parts = []
        for at in range(0, len(digits), DIGITS_PER_CALL):  # bounded memory, whatever the count
            part = slice(at, at + DIGITS_PER_CALL)
            z, y, e = self.search(digits[part], keep[part], seed, cls, n)
            post = None if cls is not None else self.posterior(y, e)
            order = e.argsort(1)
            if post is not None:  # first: the best fit of the likeliest class, then by fit
                likeliest = post.argmax(1)[:, None]
                first = e.masked_fill(y != likeliest, math.inf).argmin(1, keepdim=True)
                order = torch.cat([first, order[order != first].view(len(z), -1)], 1)
            order = order[:, :n]
            rows = torch.arange(len(z))[:, None]
            best_y, best_e = y.gather(1, order), e.gather(1, order)
            drawn = self._draw(z[rows, order].flatten(0, 1), best_y.flatten())
            drawn = drawn.view(len(z), n, 28, 28)
            parts.append((paste(digits[part], keep[part], drawn), best_y, post, best_e))
        images, labels, posterior, errors = (
            None if cls is not None and i == 2 else torch.cat([p[i] for p in parts])
            for i in range(4)
        )
        return Completion(images, labels, posterior, errors)

    def search(
        self, digits: torch.Tensor, keep: torch.Tensor, seed: int, cls: int | None, n: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Steps 1 and 2: every member's noise (N, M, C, 2, 2), class (N, M) and error on the kept
        pixels (N, M), at least n members. Every digit draws the same noises (a digit's result
        depends on it and the seed alone, not on the digits beside it)."""
        count, k, shape = len(digits), self.num_classes, self.sampler.shape
        gen = seeded(seed, "complete")
        noise = torch.randn(1, POOL, *shape, generator=gen).expand(count, -1, -1, -1, -1)
        labels = torch.arange(POOL) % k if cls is None else torch.full((POOL,), cls)
        labels = labels.expand(count, POOL)
        mask = keep.flatten(1).float()
        target = digits.flatten(1).float() * mask

        def fit(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            x = self._draw(z.flatten(0, -4), y.flatten()).view(*y.shape, -1)
            ones = [1] * (y.dim() - 1)
            return (x * mask.view(count, *ones, -1) - target.view(count, *ones, -1)).pow(2).sum(-1)

        err = fit(noise, labels)
        if cls is None:  # the best of each class
            big = torch.finfo(err.dtype).max
            members = max(MEMBERS, math.ceil(n / k))
            picks = torch.cat([
                torch.where(labels == c, err, big).topk(members, 1, largest=False).indices
                for c in range(k)
            ], 1)  # fmt: skip
        else:
            picks = err.topk(max(MEMBERS * k, n), 1, largest=False).indices
        rows = torch.arange(count)[:, None]
        z, y, e = noise[rows, picks], labels.gather(1, picks), err.gather(1, picks)
        for b in ROUNDS:  # pCN proposals; each member keeps its best child where it fits better
            step = torch.randn(1, z.shape[1], CHILDREN, *shape, generator=gen)
            children = math.sqrt(1 - b * b) * z[:, :, None] + b * step
            child_err = fit(children, y[:, :, None].expand(-1, -1, CHILDREN))
            best = child_err.argmin(2)
            best_err = child_err.gather(2, best[..., None])[..., 0]
            chosen = children[rows, torch.arange(z.shape[1])[None], best]
            better = best_err < e
            z = torch.where(better.view(*better.shape, 1, 1, 1), chosen, z)
            e = torch.where(better, best_err, e)
        return z, y, e

    def posterior(self, y: torch.Tensor, e: torch.Tensor, sigma: float = FIT_SIGMA) -> torch.Tensor:
        """p(class | kept pixels) (N, 10): each class's members weighted by exp(-e / 2 sigma^2)."""
        logw = -e / (2 * sigma**2)
        by_class = [
            torch.logsumexp(logw.masked_fill(y != c, -math.inf), 1) for c in range(self.num_classes)
        ]
        return torch.stack(by_class, 1).softmax(1)


def likeliest(posterior: list[float], top: int = 3) -> str:
    """'7 62% · 9 30% · 4 5%': the likeliest classes of a posterior, as the CLI and the page say it."""
    order = sorted(range(len(posterior)), key=lambda c: -posterior[c])[:top]
    return " · ".join(f"{c} {100 * posterior[c]:.0f}%" for c in order if posterior[c] >= 0.005)


def paste(digits: torch.Tensor, keep: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
    """The kept pixels exactly, the drawn digits elsewhere, with the kept pixels' mismatch (source
    minus drawing) carried SEAM_PX pixels into the completed part so no edge shows. uint8 out."""
    src = digits.float()[:, None]  # (N, 1, 28, 28)
    m = keep.float()[:, None].expand_as(drawn)
    diff = (src - drawn) * m
    radius = max(1, math.ceil(3 * SEAM_PX))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * SEAM_PX**2))
    kernel = kernel[:, None] * kernel[None]
    kernel = (kernel / kernel.sum()).view(1, 1, 2 * radius + 1, 2 * radius + 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t.reshape(-1, 1, 28, 28), kernel, padding=radius).view_as(t)

    near = blur(m)  # the share of kept pixels nearby: ~0.5 at the seam, 0 a few pixels away
    mismatch = blur(diff) / near.clamp_min(1e-6)  # the nearby kept pixels' mean mismatch
    carried = mismatch * (2 * near).clamp(max=1.0)
    out = torch.where(m > 0, src.expand_as(drawn), (drawn + carried).clamp(0, 1))
    return (out * 255).round().to(torch.uint8)
