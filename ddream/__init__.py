"""ddream: a rectified-flow latent diffusion model for MNIST digits, as a command-line tool."""

__version__ = "0.1.0"
