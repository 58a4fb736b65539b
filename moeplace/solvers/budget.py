"""When a search stops: a deterministic work budget, with the wall clock only as a safety net.

Work is counted in units that do not depend on the machine (an exact move evaluation is 1, a two-node window
60), so a search that stops on its work budget, or converges first, gives the same plan on any machine, busy
or idle, with one core or many. The wall-clock limit is checked at the same points; when it fires first, the
plan depends on how fast the machine was, and the result says so (`stop_reason: time_limit`).

Every phase of a search asks the same `Budget`; a phase with a budget of its own (one start of a multi-start)
asks a `sub` budget, whose own limit is not a stop of the whole search. The trajectory never depends on the
total budget, only where it ends does: a larger budget continues the same search (the prefix property).
"""

from __future__ import annotations

import time

STOP_WORK = "work_limit"
STOP_TIME = "time_limit"
STOP_CONVERGED = "converged"
STOP_INTERRUPTED = "interrupted"


def wall_clock() -> float:
    """Seconds on a monotonic clock: the only clock a search reads (tests replace it)."""
    return time.monotonic()


class Budget:
    """work_limit in work units (inf: none), time_limit_s wall seconds from now; `fired` is the first stop."""

    def __init__(self, work_limit: float, time_limit_s: float, *, _parent: Budget | None = None) -> None:
        self.work_limit = float(work_limit)
        self.parent = _parent
        self.deadline = _parent.deadline if _parent is not None else wall_clock() + time_limit_s
        self.fired: str | None = None

    def sub(self, work_limit: float) -> Budget:
        """A phase's budget: stops at `work_limit` (absolute work units) or when this budget is exhausted."""
        return Budget(min(work_limit, self.work_limit), 0.0, _parent=self)

    @property
    def root(self) -> Budget:
        return self if self.parent is None else self.parent.root

    def exhausted(self, work: float) -> bool:
        """True once `work` reaches the limit or the clock passes the deadline; records which came first."""
        root = self.root
        if root.fired is not None:
            return True
        if work >= self.work_limit:
            if work >= root.work_limit:
                root.fired = STOP_WORK
            self.fired = self.fired or STOP_WORK
            return True
        if wall_clock() > self.deadline:
            root.fired = STOP_TIME
            return True
        return False

    @property
    def timed_out(self) -> bool:
        return self.root.fired == STOP_TIME


def stop_message(stop_reason: str, time_limit_s: float) -> str | None:
    """What a user must know about a plan that stopped on the wall clock (None for any other stop)."""
    if stop_reason != STOP_TIME:
        return None
    return (f"the search stopped on the wall-clock limit ({time_limit_s:g} s) before its work budget: this plan "
            f"depends on how fast and how busy this machine was, and another run may differ; for a reproducible "
            f"plan, raise --time-limit (or lower --work-limit) so that the work budget stops the search")


def bound_message() -> str:
    """What a user must know about a bound whose LP or price stage the wall clock cut short."""
    return ("the lower bound was cut short by a wall-clock safety net: the assignment is reproducible, but the "
            "bound and gap depend on how fast and how busy this machine was; run again on a less loaded machine "
            "for the bound its work budget gives")
