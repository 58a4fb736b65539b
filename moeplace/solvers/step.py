"""The planning step every planner calls (`moeplace solve`, `compare`, the report's scenarios), so that the
same inputs give them all the same plan: solver, work budget and safety-net time limit resolved once."""

from __future__ import annotations

import numpy as np

from moeplace.placement.problem import Problem
from moeplace.solvers.base import SolveConfig, SolveResult
from moeplace.solvers.budget import STOP_CONVERGED, STOP_WORK
from moeplace.solvers.registry import default_time_limit_s, solve

DEFAULT_SOLVER = "lns"


def solve_placement(problem: Problem, *, solver: str = DEFAULT_SOLVER, seed: int = 0, work_limit: float | None = None,
                    time_limit_s: float | None = None, progress=None, hint: np.ndarray | None = None,
                    origin: np.ndarray | None = None, max_moves: int | None = None, move_cost: float = 0.0,
                    strong_bound_s: float = 0.0) -> SolveResult:
    """The planning step (work_limit None: the solver's own deterministic budget; time_limit_s None: the
    solver's default, a 600 s safety net for lns and greedy, 60 s for the exact backends)."""
    if time_limit_s is None:
        time_limit_s = default_time_limit_s(solver)
    config = SolveConfig(time_limit_s=time_limit_s, seed=seed, work_limit=work_limit, progress=progress,
                         origin_gpu_I=origin, max_moves=max_moves, move_cost=move_cost, strong_bound_s=strong_bound_s)
    return solve(problem, config, solver=solver, hint=hint)


def is_reproducible(stop_reason: str) -> bool:
    """A search that stopped on its work budget or converged gives the same plan on any machine."""
    return stop_reason in (STOP_WORK, STOP_CONVERGED, "optimal")
