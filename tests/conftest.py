"""Fixtures: tiny MNIST-like IDX folders made on the spot, and an in-process CLI runner."""

from __future__ import annotations

import contextlib
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ddream.cli import main


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 28x28 uint8 images whose class decides where a bright bar sits: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i, k in enumerate(labels):
        row = 4 + 2 * k + rng.integers(0, 2)
        images[i, row : row + 3, 6:22] = 255
        images[i, 6:22, 12 + rng.integers(0, 3)] = 200
    return images, labels.astype(np.uint8)


def write_idx(folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    names = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }[split]
    folder.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    (folder / names[0]).write_bytes(struct.pack(">IIII", 0x0803, n, 28, 28) + images.tobytes())
    (folder / names[1]).write_bytes(struct.pack(">II", 0x0801, n) + labels.tobytes())


def make_mnist(root: Path, n_train: int = 256, n_test: int = 64) -> Path:
    raw = root / "MNIST" / "raw"
    write_idx(raw, "train", *synthetic_digits(n_train, 0))
    write_idx(raw, "test", *synthetic_digits(n_test, 1))
    return root


@pytest.fixture(scope="session", autouse=True)
def fp32_by_default():
    """`--dtype auto` means fp32 here, whatever the CPU: tiny models' digits then do not depend on
    whether the machine running the suite has bf16 hardware. Tests of bf16 ask for it by name.
    Yields the real probe, for the test of the probe itself."""
    import ddream.runtime

    real = ddream.runtime.cpu_has_bf16
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ddream.runtime, "cpu_has_bf16", lambda: False)
        mp.setenv("DDREAM_FP32", "1")  # and in the processes the tests start (torchrun, kill -9)
        yield real


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    return make_mnist(tmp_path_factory.mktemp("mnist"))


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, tmp_path, monkeypatch):
    """Run `ddream ARGS` in this process, in the test's own folder (so an output named by default,
    such as `sample`'s samples.png, never lands in the checkout); returns exit code, stdout and
    stderr."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def trained_state(tmp_path_factory, mnist_dir) -> Path:
    """A state dir with the whole quick pipeline done on the synthetic digits (shared, read-only)."""
    state = tmp_path_factory.mktemp("state")
    try:
        main(
            [
                "all",
                "--profile",
                "quick",
                "--data-dir",
                str(mnist_dir),
                "--state-dir",
                str(state),
                "--quiet",
                "--device",
                "cpu",
            ]
        )
    except SystemExit as e:
        assert e.code in (0, None), f"quick pipeline failed with exit code {e.code}"
    return state


@contextlib.contextmanager
def stop_after(steps: int):
    """Ask training to stop cleanly (as SIGINT does) once a run has taken `steps` steps."""
    from ddream import train

    def hook(done: int) -> bool:
        return done >= steps

    train.STEP_HOOKS.append(hook)
    try:
        yield
    finally:
        train.STEP_HOOKS.remove(hook)


def ddream_command(*args: str, step_delay: float = 0.0) -> list[str]:
    """`ddream ARGS` in a fresh interpreter; with `step_delay`, every training step sleeps that
    long (a step hook), so that a test can kill it mid-stage."""
    code = "import sys\nfrom ddream.cli import main\n"
    if step_delay:
        code = (
            "import sys, time\nfrom ddream import train\n"
            f"train.STEP_HOOKS.append(lambda n: time.sleep({step_delay}) or False)\n"
            "from ddream.cli import main\n"
        )
    return [sys.executable, "-c", code + "main(sys.argv[1:])", *[str(a) for a in args]]
