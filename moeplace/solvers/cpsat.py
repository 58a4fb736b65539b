"""CP-SAT backend: the pair model (`pairmodel`) in OR-Tools CP-SAT.

Pair, z and g variables are booleans; the rows of `pairlp` become linear constraints (all coefficients are
small integers). CP-SAT's presolve is off and its linearization at level 2, so that the triangle
inequalities stay linear rows of its LP relaxation instead of being turned into clauses: that LP is what
makes the bound strong. The objective is scaled to integers, exactly when the costs allow it (bytes are
counts of sampled tokens times a fixed vector size), else rounded down, which keeps CP-SAT's bound a
lower bound of the true objective. Time limit, worker count and seed come from the config; with one
worker the search is deterministic.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from moeplace.placement.problem import Problem
from moeplace.solvers import pairlp
from moeplace.solvers.base import SolveConfig, SolveResult
from moeplace.solvers.exact import Attempt, run_exact
from moeplace.solvers.pairmodel import PairModel
from moeplace.solvers.registry import register_solver

MAX_SCALED = 2.0 ** 52


def integer_scale(cost: np.ndarray) -> tuple[float, bool]:
    """(scale, exact): the smallest power of ten that makes every cost an integer, or a rounding scale."""
    nz = cost[cost != 0]
    if not nz.size:
        return 1.0, True
    big = float(np.abs(nz).max())
    total = float(np.abs(nz).sum())
    for k in range(0, 13):
        s = 10.0 ** k
        if total * s > MAX_SCALED / 16:
            break
        scaled = nz * s
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6):
            return s, True
    return min(1e9 / big, MAX_SCALED / 16 / total), False


if importlib.util.find_spec("ortools.sat") is None:  # the registry's test for OR-Tools (cp_model loads on use:
    raise ModuleNotFoundError("No module named 'ortools.sat'", name="ortools.sat")  # it costs a second per solve)


def _cpsat(config: SolveConfig):
    from ortools.sat.python import cp_model

    def integer_solve(model: PairModel, rows: pairlp.Rows, hint: np.ndarray, time_left_s: float, lb: np.ndarray,
                      ub: np.ndarray) -> Attempt:
        lay = pairlp.layout(model)
        cost, const = pairlp.objective(model)
        scale, exact = integer_scale(cost)
        icost = (np.round(cost * scale) if exact else np.floor(cost * scale)).astype(np.int64)
        m = cp_model.CpModel()
        x = [m.new_bool_var(f"v{k}") for k in range(lay.num_vars)]
        for k in np.flatnonzero((lb > 0) | (ub < 1)).tolist():
            m.add(x[k] == int(lb[k] > 0))
        order = np.argsort(rows.row, kind="stable")
        r, c, v = rows.row[order], rows.col[order], rows.val[order]
        starts = np.searchsorted(r, np.arange(rows.num_rows + 1))
        for k in range(rows.num_rows):
            lo, hi = rows.lo[k], rows.hi[k]
            cols, vals = c[starts[k]:starts[k + 1]], v[starts[k]:starts[k + 1]]
            expr = cp_model.LinearExpr.weighted_sum([x[j] for j in cols.tolist()], np.round(vals).astype(int).tolist())
            lo_i = int(np.ceil(lo - 1e-9)) if np.isfinite(lo) else None
            hi_i = int(np.floor(hi + 1e-9)) if np.isfinite(hi) else None
            if lo_i is not None and hi_i is not None:
                m.add_linear_constraint(expr, lo_i, hi_i)
            elif lo_i is not None:
                m.add(expr >= lo_i)
            else:
                m.add(expr <= hi_i)
        nz = np.flatnonzero(icost)
        m.minimize(cp_model.LinearExpr.weighted_sum([x[j] for j in nz.tolist()], icost[nz].tolist()))
        for j, val in enumerate(np.round(hint).astype(int).tolist()):
            m.add_hint(x[j], val)
        solver = cp_model.CpSolver()
        p = solver.parameters
        p.max_time_in_seconds = max(0.01, time_left_s)
        p.num_workers = max(1, int(config.workers))
        p.random_seed = int(config.seed)
        p.cp_model_presolve = False
        p.linearization_level = 2
        status = solver.solve(m)
        if status == cp_model.INFEASIBLE:
            return Attempt(values=None, optimal=True, bound=np.inf)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return Attempt(values=None, optimal=False, bound=float(solver.best_objective_bound / scale + const))
        values = np.array([solver.value(var) for var in x], dtype=np.float64)
        bound = solver.best_objective_bound / scale + const
        return Attempt(values=values, optimal=status == cp_model.OPTIMAL, bound=float(bound))

    return integer_solve


@register_solver("cpsat", "exact CP-SAT on the pair model (small instances, <= 128 slots)")
def solve_cpsat(problem: Problem, config: SolveConfig, hint: np.ndarray | None = None) -> SolveResult:
    return run_exact(problem, config, hint, "cpsat", _cpsat(config))
