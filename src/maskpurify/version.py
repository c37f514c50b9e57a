"""The package version, in one place below every layer (the CLI prints it, run records carry it)."""

__version__ = "0.2.0"
