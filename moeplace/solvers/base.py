"""The contract every solver backend keeps.

A backend is a function `solve(problem, config, *, hint) -> SolveResult`. The front door
(`moeplace.solvers.registry.solve`) validates the result, recomputes its objective with the one cost module
and attaches the best lower bound it knows, so no backend can report a number the plan does not have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from moeplace.placement.problem import Problem

SAFETY_NET_S = 600.0  # wall-clock default of the work-budgeted searches: far above what their budget needs
EXACT_TIME_LIMIT_S = 60.0  # wall-clock default of the exact backends, for which time is the budget
STATUS_OPTIMAL = "optimal"
STATUS_FEASIBLE = "feasible"


@dataclass(frozen=True)
class SolveConfig:
    """time_limit_s caps wall time; work_limit caps deterministic work (same inputs and seed, same plan).

    Re-planning: `origin_gpu_I` is the plan in service; at most `max_moves` experts may change GPU, and each
    move costs `move_cost` in objective units (leaf-byte equivalents per token) during the search.
    """

    time_limit_s: float = 60.0  # the front door's default per solver: `registry.default_time_limit_s`
    seed: int = 0
    workers: int = 1
    work_limit: float | None = None
    origin_gpu_I: np.ndarray | None = field(default=None, compare=False, repr=False)
    max_moves: int | None = None
    move_cost: float = 0.0
    strong_bound_s: float = 0.0  # > 0: the front door also proves an LP bound (lp_bound.strong_bound) in this time
    progress: Callable[[dict], None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, eq=False)
class SolveResult:
    solver: str
    item_gpu_I: np.ndarray
    objective: float
    bound: float
    status: str
    wall_time_s: float
    work: float
    stop_reason: str
    details: dict = field(default_factory=dict)
    work_limit: float | None = None  # the work budget in force (the backend's default when none was given)

    @property
    def gap(self) -> float:
        """Relative gap (objective - bound) / objective; 0 when proven optimal."""
        if self.objective <= 0:
            return 0.0
        return max(0.0, (self.objective - self.bound) / self.objective)


Backend = Callable[[Problem, SolveConfig, "np.ndarray | None"], SolveResult]
