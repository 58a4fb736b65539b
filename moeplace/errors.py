"""User-facing errors: one line naming the file, field and value.

`InputError` is raised for anything a user can fix (a bad file, an unknown preset, a model that does not
fit the cluster). The CLI turns it into one line on stderr and exit code 2; library callers catch it.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input. `str(err)` is the whole message, one line."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.source = source
        self.field = field
        parts = []
        if source:
            parts.append(str(source))
        if field:
            parts.append(field)
        prefix = ": ".join(parts)
        text = f"{prefix}: {message}" if prefix else message
        super().__init__(" ".join(text.split("\n")))


class InfeasibleError(InputError):
    """A problem whose constraints cannot all hold (capacity, balance); the message shows the arithmetic."""
