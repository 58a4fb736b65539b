"""ILP backends: the pair model (`pairmodel`) as a MIP, solved by SCIP (`ilp`) or HiGHS (`ilp-highs`).

Both go through OR-Tools MathOpt (`linprog`), hinted with the start plan, with the time limit, seed and (SCIP)
thread count of the config; the MIP's dual bound is the proven bound. The shared loop is `exact.run_exact`.
"""

from __future__ import annotations

import numpy as np

from moeplace.placement.problem import Problem
from moeplace.solvers import linprog, pairlp
from moeplace.solvers.base import SolveConfig, SolveResult
from moeplace.solvers.exact import Attempt, run_exact
from moeplace.solvers.pairmodel import PairModel
from moeplace.solvers.registry import register_solver


def _mip(solver: str, config: SolveConfig):
    def integer_solve(model: PairModel, rows: pairlp.Rows, hint: np.ndarray, time_left_s: float, lb: np.ndarray,
                      ub: np.ndarray) -> Attempt:
        lay = pairlp.layout(model)
        cost, const = pairlp.objective(model)
        integer = np.arange(lay.num_vars) < lay.g0  # g terms are integral once x and z are
        mp = linprog.build(cost, const, ub, integer, rows, lb=lb)
        res = linprog.solve(mp, solver, time_limit_s=time_left_s, threads=config.workers, seed=config.seed,
                            hint=hint)
        if res.infeasible:
            return Attempt(values=None, optimal=True, bound=np.inf)
        return Attempt(values=res.values, optimal=res.optimal, bound=res.bound)

    return integer_solve


@register_solver("ilp", "exact MIP on the pair model, SCIP via MathOpt (small instances, <= 128 slots)")
def solve_ilp(problem: Problem, config: SolveConfig, hint: np.ndarray | None = None) -> SolveResult:
    return run_exact(problem, config, hint, "ilp", _mip("scip", config))


@register_solver("ilp-highs", "exact MIP on the pair model, HiGHS via MathOpt (small instances, <= 128 slots)")
def solve_ilp_highs(problem: Problem, config: SolveConfig, hint: np.ndarray | None = None) -> SolveResult:
    return run_exact(problem, config, hint, "ilp-highs", _mip("highs", config))
