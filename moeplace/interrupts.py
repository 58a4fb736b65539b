"""Stopping a solve from outside without losing it: SIGTERM (Slurm at a time limit) and Ctrl-C.

`keep_best_plan()` holds SIGINT and SIGTERM for one command. The first signal raises `KeyboardInterrupt`
where the program is: inside a search, the search returns the best plan found so far, which is then written
whole (atomically); before the search, the command stops with nothing written. Every later signal, and any
signal once the search has returned (`search_done()`), is only recorded, so that a second Ctrl-C cannot lose
the plan being written. `stop_reason()` names what happened: 'interrupted' (SIGINT) or 'terminated'
(SIGTERM). An inherited "ignore SIGINT" (`nohup`, a background job) is kept. SIGKILL still stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

REASONS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


class _State:
    armed = False
    first: int | None = None
    during_search = False
    count = 0


_state = _State()


def _handler(signum: int, frame) -> None:
    _state.count += 1
    if _state.first is None:
        _state.first = signum
        if _state.armed:
            _state.during_search = True
            raise KeyboardInterrupt


def stop_reason() -> str | None:
    """'interrupted' or 'terminated' when a signal stopped the search, else None."""
    return REASONS[_state.first] if _state.during_search and _state.first is not None else None


def search_done() -> None:
    """From now on a signal only is recorded: the finished plan is written whole."""
    _state.armed = False


def exit_code() -> int | None:
    """128 + the first signal's number when one arrived (130 for SIGINT, 143 for SIGTERM), else None."""
    return None if _state.first is None else 128 + int(_state.first)


@contextlib.contextmanager
def keep_best_plan() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the block (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in REASONS}
    _state.armed, _state.first, _state.during_search, _state.count = True, None, False, 0
    for s in REASONS:
        if old[s] is not signal.SIG_IGN:
            signal.signal(s, _handler)
    try:
        yield
    finally:
        _state.armed = False
        for s, h in old.items():
            signal.signal(s, h)
