"""No hang, ever: a watchdog thread that ends the process with one line naming the cause.

The main thread arms the watchdog with a deadline before anything that can block (rendezvous, a step's
collectives, the end-of-run gather) and disarms it after. While armed, the watchdog also polls the
rendezvous store for failures other ranks reported, so that a rank whose peer failed stops within about a
second with that peer's cause instead of waiting for its own timeout. Exit codes: 2 launch mismatch,
3 peer failure or timeout, 1 anything else.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

EXIT_LAUNCH, EXIT_PEER, EXIT_OTHER = 2, 3, 1
_DYING = threading.Lock()


class PeerFailure(RuntimeError):
    """A peer died, reported a failure, or a collective timed out."""


def die(rank: int | None, message: str, code: int, on_exit: Callable[[str], None] | None = None) -> None:
    """Print one line, run the best-effort hook (rank file, store report), and leave without cleanup.

    The first caller wins: a second thread arriving here waits for the first one's exit.
    """
    if not _DYING.acquire(blocking=False):
        while True:
            time.sleep(60)
    line = f"moeplace worker{'' if rank is None else f' rank {rank}'}: {message}"
    sys.stderr.write(" ".join(line.split("\n")) + "\n")
    sys.stderr.flush()
    if on_exit is not None:
        try:
            on_exit(message)
        except Exception:  # noqa: BLE001 - the exit must happen whatever the hook does
            pass
    sys.stdout.flush()
    os._exit(code)


class Watchdog:
    """`arm(seconds, what)` ... `disarm()`; `poll` returns a peer's failure message or None."""

    def __init__(self, rank: int, poll: Callable[[], str | None] | None = None,
                 on_exit: Callable[[str], None] | None = None, interval_s: float = 0.5) -> None:
        self.rank = rank
        self.poll = poll
        self.on_exit = on_exit
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._what = ""
        self._thread = threading.Thread(target=self._run, name="moeplace-watchdog", daemon=True)
        self._thread.start()

    def arm(self, seconds: float, what: str) -> None:
        with self._lock:
            self._deadline = time.monotonic() + seconds
            self._seconds = seconds
            self._what = what

    def disarm(self) -> None:
        with self._lock:
            self._deadline = None

    def _run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            with self._lock:
                deadline, what = self._deadline, self._what
                seconds = getattr(self, "_seconds", 0.0)
            if deadline is None:
                continue
            if self.poll is not None:
                try:
                    cause = self.poll()
                except Exception:  # noqa: BLE001 - the store itself is gone: rank 0 died
                    cause = "lost the rendezvous store (the process hosting it, rank 0, is gone)"
                if cause:
                    die(self.rank, f"stopping during {what}: {cause}", EXIT_PEER, self.on_exit)
            if time.monotonic() > deadline:
                die(self.rank, f"timeout after {seconds:.0f} s during {what} (a peer died or hangs)", EXIT_PEER,
                    self.on_exit)
