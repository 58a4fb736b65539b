"""All terminal output: the only module that imports rich.

Commands hand plain data (dicts, dataclasses) to a `Console`; the library below never prints.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console as _RichConsole
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text


def fmt_bytes(x: float) -> str:
    """Bytes with thousands separators (B/token figures are compared digit by digit)."""
    return f"{x:,.0f}"


class Console:
    def __init__(self, *, stderr: bool = False, quiet: bool = False) -> None:
        stream = sys.stderr if stderr else sys.stdout
        width = None if stream.isatty() else 160
        self._rich = _RichConsole(stderr=stderr, highlight=False, soft_wrap=False, width=width)
        self.quiet = quiet

    # -- plain lines -------------------------------------------------------------------------------
    def error(self, message: str) -> None:
        """One line, no markup interpretation, no wrapping."""
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()

    def line(self, text: str = "") -> None:
        if not self.quiet:
            self._rich.print(text, markup=False)

    def json(self, obj: Any) -> None:
        sys.stdout.write(json.dumps(obj, indent=2) + "\n")

    # -- tables ------------------------------------------------------------------------------------
    def table(self, title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
              *, right: Sequence[int] = ()) -> None:
        if self.quiet:
            return
        t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
        for idx, col in enumerate(columns):
            t.add_column(col, justify="right" if idx in right else "left")
        for row in rows:
            t.add_row(*[Text(str(x)) for x in row])
        self._rich.print(t)

    def progress(self, description: str, total: float | None = None) -> Progress:
        return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                        TimeElapsedColumn(), console=self._rich, transient=True, disable=self.quiet)
