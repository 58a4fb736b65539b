"""All terminal output: the only module that imports rich.

Commands hand plain data (dicts, dataclasses) to a `Console`; the library below never prints.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console as _RichConsole
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text


def fmt_bytes(x: float) -> str:
    """Bytes with thousands separators (B/token figures are compared digit by digit)."""
    return f"{x:,.0f}"


def progress_text(info: dict) -> str:
    """The incumbent in a few words: objective, bound and gap when known, work done (exact move evaluations)."""
    if "phase" in info:  # after the search: what runs now (the bound's LPs take seconds to minutes)
        return f"objective {fmt_bytes(info['objective'])}  {info['phase']}"
    gap = f"  bound {fmt_bytes(info['bound'])}  gap {info['gap'] * 100:.1f}%" if "bound" in info else ""
    return f"objective {fmt_bytes(info['objective'])}{gap}  evaluations {info['evaluations']:,.0f}"


class ProgressLog:
    """Plain progress lines for a log (stdout not a terminal: CI, a Slurm job's output file).

    `update(info)` records the incumbent; it and `tick()` (called by a heartbeat thread) write a line when
    `interval_s` have passed on `clock` since the last one, so a search that reports rarely still shows a
    line every few seconds. Display only: the clock decides when a line is written, never what is solved.
    """

    def __init__(self, write: Callable[[str], None], *, interval_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._write, self._clock, self.interval_s = write, clock, interval_s
        self._start = self._last = clock()
        self._info: dict | None = None
        self._lock = threading.Lock()

    def update(self, info: dict) -> None:
        self._info = dict(info)
        self.tick()

    def tick(self) -> None:
        with self._lock:
            now = self._clock()
            if now - self._last < self.interval_s:
                return
            self._last = now
            state = "no plan yet" if self._info is None else progress_text(self._info)
            self._write(f"solving: {now - self._start:.0f} s  {state}")


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

    @contextmanager
    def solve_progress(self, *, interval_s: float = 5.0, clock: Callable[[], float] = time.monotonic,
                       heartbeat: bool = True) -> Iterator[Callable[[dict], None]]:
        """A `progress(info)` for a solve: a live bar on a terminal, else a plain line every `interval_s`."""
        if self.quiet:
            yield lambda info: None
        elif self._rich.is_terminal:
            with self.progress("solving") as bar:
                task = bar.add_task("solving", total=None, info="")
                yield lambda info: bar.update(task, info=progress_text(info))
        else:
            def write(text: str) -> None:
                sys.stdout.write(text + "\n")
                sys.stdout.flush()

            log = ProgressLog(write, interval_s=interval_s, clock=clock)
            stop = threading.Event()

            def beat_loop() -> None:
                while not stop.wait(1.0):
                    log.tick()

            beat = threading.Thread(target=beat_loop, daemon=True, name="moeplace-progress")
            if heartbeat:
                beat.start()
            try:
                yield log.update
            finally:
                stop.set()
                if heartbeat:
                    beat.join()

    def progress(self, description: str, total: float | None = None) -> Progress:
        return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                        TimeElapsedColumn(), console=self._rich, transient=True, disable=self.quiet)
