"""ddream's version, in one place: the package, its metadata (pyproject.toml) and every record read it."""

__version__ = "0.2.0"
