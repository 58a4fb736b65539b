"""Solvers behind one front door: `solve(problem, config, solver=..., hint=...)`.

Backends register themselves in `moeplace.solvers.registry`; nothing outside it branches on a solver name.
"""

from moeplace.solvers.base import SolveConfig, SolveResult
from moeplace.solvers.registry import available_solvers, get_solver, solve

__all__ = ["SolveConfig", "SolveResult", "solve", "get_solver", "available_solvers"]
