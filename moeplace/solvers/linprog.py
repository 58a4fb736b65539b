"""LPs and MIPs from numpy arrays, solved through OR-Tools MathOpt (SCIP, HiGHS): one small door.

Models are built as MathOpt protos straight from arrays (no per-term Python objects), so models of a few
hundred thousand nonzeros build in well under a second. `safe_dual_bound` turns any row duals into a
lower bound that holds whatever the LP solver's tolerances: for min c.x, lo <= Ax <= hi, 0 <= x <= ub,

    L(y) = sum_r (y_r lo_r if y_r > 0 else y_r hi_r) + sum_j min(0, (c - A^T y)_j * ub_j)

is a lower bound for every y (rows whose side is infinite get y_r = 0).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np
from ortools.math_opt import callback_pb2, model_parameters_pb2, model_pb2, parameters_pb2, result_pb2
from ortools.math_opt.core.python import solver as _solver

from moeplace.solvers.pairlp import Rows

SOLVERS = {"scip": parameters_pb2.SOLVER_TYPE_GSCIP, "highs": parameters_pb2.SOLVER_TYPE_HIGHS}
_OPTIMAL = result_pb2.TERMINATION_REASON_OPTIMAL
_FEASIBLE = result_pb2.TERMINATION_REASON_FEASIBLE
_INFEASIBLE = result_pb2.TERMINATION_REASON_INFEASIBLE


@dataclass(frozen=True)
class LinearResult:
    optimal: bool
    infeasible: bool
    values: np.ndarray | None    # best primal solution, None if none
    objective: float             # of `values` (inf if none)
    bound: float                 # the solver's proven dual bound (-inf if none)
    duals: np.ndarray | None     # row duals (LPs only)
    reason: str


def build(cost: np.ndarray, const: float, ub: np.ndarray, integer: np.ndarray, rows: Rows,
          lb: np.ndarray | None = None) -> model_pb2.ModelProto:
    """min cost.x + const over lb <= x <= ub (lb = 0 by default; integer where `integer`), lo <= rows <= hi."""
    n = cost.size
    m = model_pb2.ModelProto()
    ids = np.arange(n, dtype=np.int64)
    m.variables.ids.extend(ids.tolist())
    m.variables.lower_bounds.extend((np.zeros(n) if lb is None else lb.astype(float)).tolist())
    m.variables.upper_bounds.extend(ub.astype(float).tolist())
    m.variables.integers.extend(integer.astype(bool).tolist())
    nz = np.flatnonzero(cost)
    m.objective.offset = float(const)
    m.objective.linear_coefficients.ids.extend(nz.tolist())
    m.objective.linear_coefficients.values.extend(cost[nz].tolist())
    k = rows.num_rows
    m.linear_constraints.ids.extend(range(k))
    m.linear_constraints.lower_bounds.extend(rows.lo.tolist())
    m.linear_constraints.upper_bounds.extend(rows.hi.tolist())
    # MathOpt wants the matrix sorted by (row, column) without duplicates
    key = rows.row.astype(np.int64) * n + rows.col
    uniq, inv = np.unique(key, return_inverse=True)
    val = np.bincount(inv.ravel(), weights=rows.val, minlength=uniq.size)
    keep = val != 0
    mat = m.linear_constraint_matrix
    mat.row_ids.extend((uniq[keep] // n).tolist())
    mat.column_ids.extend((uniq[keep] % n).tolist())
    mat.coefficients.extend(val[keep].tolist())
    return m


def solve(model: model_pb2.ModelProto, solver: str, *, time_limit_s: float, threads: int = 1, seed: int = 0,
          hint: np.ndarray | None = None, lp_barrier: bool = False, duals: bool = False,
          iteration_limit: int | None = None, highs_options: dict | None = None) -> LinearResult:
    params = parameters_pb2.SolveParametersProto()
    if iteration_limit is not None:  # a deterministic work limit (simplex iterations), unlike the time limit
        params.iteration_limit = int(iteration_limit)
    params.time_limit.FromTimedelta(datetime.timedelta(seconds=max(0.01, time_limit_s)))
    params.random_seed = int(seed)
    params.relative_gap_tolerance = 0.0
    params.absolute_gap_tolerance = 1e-9
    if solver == "scip":
        params.threads = max(1, int(threads))
    if lp_barrier:
        params.lp_algorithm = parameters_pb2.LP_ALGORITHM_BARRIER
        if solver == "highs":
            params.highs.string_options["run_crossover"] = "off"
    for key, value in (highs_options or {}).items():  # HiGHS's own options (tolerances), by their names
        opts = params.highs.double_options if isinstance(value, float) else params.highs.int_options
        opts[key] = value
    mp = model_parameters_pb2.ModelSolveParametersProto()
    if hint is not None:
        h = mp.solution_hints.add()
        h.variable_values.ids.extend(range(hint.size))
        h.variable_values.values.extend(np.asarray(hint, dtype=float).tolist())
    init = parameters_pb2.SolverInitializerProto()
    res = _solver.solve(model, SOLVERS[solver], init, params, mp, None, callback_pb2.CallbackRegistrationProto(),
                        None, None)
    n = len(model.variables.ids)
    values, obj = None, float("inf")
    dual = None
    for sol in res.solutions:
        if sol.HasField("primal_solution") and values is None:
            ps = sol.primal_solution
            values = np.zeros(n)
            values[np.asarray(ps.variable_values.ids, dtype=np.int64)] = ps.variable_values.values
            obj = ps.objective_value
        if duals and sol.HasField("dual_solution") and dual is None:
            ds = sol.dual_solution
            dual = np.zeros(len(model.linear_constraints.ids))
            dual[np.asarray(ds.dual_values.ids, dtype=np.int64)] = ds.dual_values.values
    reason = res.termination.reason
    bound = res.termination.objective_bounds.dual_bound
    return LinearResult(optimal=reason == _OPTIMAL, infeasible=reason == _INFEASIBLE, values=values, objective=obj,
                        bound=float(bound), duals=dual,
                        reason=result_pb2.TerminationReasonProto.Name(reason).removeprefix("TERMINATION_REASON_"))


def safe_dual_bound(cost: np.ndarray, const: float, ub: np.ndarray, rows: Rows, y: np.ndarray) -> float:
    """A lower bound on min cost.x + const over the LP, from any row multipliers y (see module docstring)."""
    return dual_bound_and_reduced(cost, const, ub, rows, y)[0]


def dual_bound_and_reduced(cost: np.ndarray, const: float, ub: np.ndarray, rows: Rows, y: np.ndarray
                           ) -> tuple[float, np.ndarray]:
    """(L(y), reduced costs c - A^T y): any x of the LP costs at least L(y) + sum_j (d_j x_j - min(0, d_j ub_j)),
    which is what reduced-cost fixing uses."""
    y = np.where((y > 0) & ~np.isfinite(rows.lo), 0.0, y)
    y = np.where((y < 0) & ~np.isfinite(rows.hi), 0.0, y)
    side = np.where(y > 0, np.where(np.isfinite(rows.lo), rows.lo, 0.0), np.where(np.isfinite(rows.hi), rows.hi, 0.0))
    reduced = cost - np.bincount(rows.col, weights=rows.val * y[rows.row], minlength=cost.size)
    return float(const + (y * side).sum() + np.minimum(0.0, reduced * ub).sum()), reduced
