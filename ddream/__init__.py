"""ddream: a rectified-flow latent diffusion model for MNIST digits, as a command-line tool and a small
Python API (`ddream.load`, `ddream.grid`, `ddream.to_pil`; see ddream/api.py). Importing ddream
imports no torch: the API loads it when first called."""

from ddream.version import __version__

__all__ = ["load", "grid", "to_pil", "__version__"]


def __getattr__(name: str):
    if name in ("load", "grid", "to_pil", "Model"):
        from ddream import api

        return getattr(api, name)
    raise AttributeError(f"module 'ddream' has no attribute {name!r}")
