"""The package version, at the bottom of the stack so that any module may record it."""

__version__ = "0.1.0"
