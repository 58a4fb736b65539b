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

    @classmethod
    def from_validation(cls, exc, source: str | None, *, skip: int = 0, top: str = "(top level)") -> InputError:
        """The first error of a pydantic `ValidationError` as one line: its field path (less `skip` leading
        parts), its message and the value given, unless that value is a whole object or list."""
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"][skip:]) or top
        value = err.get("input")
        shown = "" if isinstance(value, (dict, list)) else f" (got {value!r})"
        return cls(f"{err['msg']}{shown}", source=source, field=loc)


class InfeasibleError(InputError):
    """A problem whose constraints cannot all hold (capacity, balance); the message shows the arithmetic."""
