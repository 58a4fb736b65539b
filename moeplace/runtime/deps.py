"""The runtime's optional dependency: torch is imported here and nowhere in the planner."""

from __future__ import annotations

from types import ModuleType

from moeplace.errors import InputError

INSTALL_HINT = "install moeplace[runtime] (pip install 'moeplace[runtime]') to get PyTorch"


def import_torch() -> ModuleType:
    """Return the `torch` module, or raise an `InputError` that says how to install it."""
    try:
        import torch
    except ImportError:
        raise InputError(f"the runtime needs PyTorch, which is not installed: {INSTALL_HINT}") from None
    return torch


def has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
