"""Helpers the benchmark scripts share: running ddream as a user would, and timing it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def worktree(commit: str):
    """A detached git worktree of `commit` (the repository's own), removed afterwards: older code
    run side by side with this checkout's (`at(tree, ...)` runs Python with it on the path)."""
    tree = Path(tempfile.mkdtemp(prefix="ddream-tree-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-f", "--detach", str(tree), commit],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                       capture_output=True)  # fmt: skip


def at(tree: Path, *args: str, env: dict | None = None, capture: bool = False) -> str:
    """`python ARGS` with the ddream of `tree` (a worktree, or ROOT) first on the path, run there;
    stops the benchmark if it fails. Its stdout when `capture`."""
    env = {**(env or os.environ), "PYTHONPATH": str(tree)}
    res = subprocess.run([sys.executable, *args], env=env, cwd=tree, check=True, text=True,
                         capture_output=capture)  # fmt: skip
    return res.stdout if capture else ""


def add_state_dir(ap, help: str = "a trained default state dir") -> None:
    """--state-dir, as ddream spells it (--state, the older spelling, still read): args.state."""
    ap.add_argument("--state-dir", "--state", dest="state", type=Path, required=True, help=help)


def score_cells(g) -> str:
    """A GenerationScores as table cells: FID | class accuracy | precision | recall."""
    return f"{g.fid:.2f} | {g.class_accuracy:.2%} | {g.precision:.3f} | {g.recall:.3f}"


def append_json(path: Path | None, row: dict) -> None:
    """Append one JSON line to `path` (nothing when None): a benchmark's rows, for later tables."""
    if path is not None:
        import json

        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def best(fn, repeats: int) -> float:
    """The fastest of `repeats` timed calls of fn, after one untimed warm-up call (seconds)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ddream(*args: str, capture: bool = False) -> str:
    """Run `python -m ddream ARGS`; stop the benchmark if it fails. Its stdout when `capture`."""
    res = subprocess.run(
        [sys.executable, "-m", "ddream", *args], check=True, text=True, capture_output=capture
    )
    return res.stdout if capture else ""


def timed_ddream(*args: str) -> tuple[float, float]:
    """Run `python -m ddream ARGS`: (wall seconds, peak RSS in MiB of that process alone)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ddream", *args])
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"ddream {' '.join(args)} failed (exit {proc.returncode})")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024  # Linux reports KiB


def draw(state: Path, grid: Path | None = None, gif: Path | None = None, *extra: str) -> None:
    """A sample grid (one class a row) and/or a 40-digit trajectory GIF from a trained state dir."""
    base = ("sample", "--state-dir", str(state), "--device", "cpu", "--quiet", *extra)
    if grid is not None:
        ddream(*base, "--grid", str(grid))
    if gif is not None:
        ddream(*base, "--n", "40", "--gif", str(gif))


def digits_per_s(sampler, labels, req, repeats: int = 5) -> float:
    """Digits/s of `sampler.generate` (decoding included) for one resolved request: the best of
    `repeats` timed runs, seeds 0.., after one warm-up run; CUDA is synchronised around each."""
    import dataclasses

    import torch

    def sync() -> None:
        if sampler.device.type == "cuda":
            torch.cuda.synchronize()

    sampler.generate(labels, req)  # warm-up
    best = float("inf")
    for seed in range(repeats):
        sync()
        t0 = time.perf_counter()
        sampler.generate(labels, dataclasses.replace(req, seed=seed))
        sync()
        best = min(best, time.perf_counter() - t0)
    return len(labels) / best


class Scorer:
    """`ddream eval`'s generation scores for a trained state dir: its cached classifier and the
    test split's features, loaded once; `score(sampler, req, n)` draws n balanced samples."""

    def __init__(self, state: Path, data_dir: Path) -> None:
        import torch

        from ddream.artifacts import load_ae_with_dataset, load_dataset
        from ddream.stages.evaluate import features, load_or_train_classifier
        from ddream.state import StateDir

        self.device = torch.device("cpu")
        st = StateDir(state)
        _, _, dataset = load_ae_with_dataset(st, self.device)
        train, test = load_dataset(st, Path(data_dir), dataset["name"])
        self.clf, _ = load_or_train_classifier(
            st, train, test, dataset["fingerprint"], self.device, print
        )
        self.real, _ = features(self.clf, test.images.float() / 255, self.device)

    def score(self, sampler, req, n: int):
        """GenerationScores (FID, class accuracy, precision, recall) of n samples of `req`."""
        from ddream.stages.evaluate import balanced_labels, generate, score_generation

        labels = balanced_labels(n)
        fake = generate(sampler, labels, req)
        return score_generation(self.clf, fake, labels, self.real, self.device)
