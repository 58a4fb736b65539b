"""The loop shared by the exact backends (`cpsat`, `ilp`, `ilp-highs`) over the pair model.

Step 1  Build the pair model (`pairmodel`); refuse, with the arithmetic, instances too large for it.
Step 2  Start from the hint, else the `lns` backend's plan on a tenth of the time (so a run cut short by
        the time limit is never worse than it), encoded as a full solution for the solver's hint.
Step 3  Triangle inequalities: those the LP relaxation violates, separated in rounds (every round's LP is
        a relaxation, so its value, computed safely from the duals, is a proven bound). Reduced-cost
        fixing at the best round: a binary whose reduced cost lifts the bound above the incumbent is fixed.
Step 4  Solve the integer model; if its solution breaks a triangle inequality left out, add the broken
        ones and solve again. A solution that keeps them all is a nested partition: decode it to a plan.
Step 5  Report the better of the incumbent and the decoded plan, with the solver's proven bound; status
        optimal only when the solver proved optimality on a model that holds every triangle it needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from moeplace.placement.baselines import layer_major
from moeplace.placement.cost import objective
from moeplace.placement.problem import Problem
from moeplace.placement.validate import is_feasible
from moeplace.solvers import linprog, pairlp
from moeplace.solvers.base import STATUS_FEASIBLE, STATUS_OPTIMAL, SolveConfig, SolveResult
from moeplace.solvers.pairmodel import PairModel, build_pair_model, check_exact_size
from moeplace.solvers.pairplan import canonical, decode, encode, fill_slots

LP_SHARE = 0.4              # at most this share of the time limit on LP separation rounds
START_SOLVER = "lns"
START_WORK_PER_ITEM = 20


@dataclass(frozen=True)
class Attempt:
    """One integer solve: the solution (or None), whether the solver proved it optimal, its proven bound."""

    values: np.ndarray | None
    optimal: bool
    bound: float


IntegerSolve = Callable[[PairModel, pairlp.Rows, np.ndarray, float, np.ndarray, np.ndarray], Attempt]
"""(model, rows, hint values, time left in s, lb, ub) -> Attempt; infeasible: values None, optimal True."""


def start_plan(problem: Problem, config: SolveConfig, hint: np.ndarray | None) -> tuple[np.ndarray, str]:
    """Step 2: the hint, else the default heuristic's (`lns`) plan on a small budget, or layer-major."""
    if hint is not None:
        return np.asarray(hint, dtype=np.int64).copy(), "hint"
    from moeplace.solvers.registry import get_solver

    heuristic = get_solver(START_SOLVER)
    budget = SolveConfig(time_limit_s=max(0.1, 0.1 * config.time_limit_s), seed=config.seed, workers=1,
                         work_limit=START_WORK_PER_ITEM * problem.num_items)
    plan = heuristic(problem, budget, None).item_gpu_I
    lm = layer_major(problem)
    if is_feasible(problem, lm) and objective(problem, lm) < objective(problem, plan):
        return lm, "layer-major"
    return plan, START_SOLVER


def separate(model: PairModel, cost: np.ndarray, const: float, rows: pairlp.Rows, deadline: float,
             ) -> tuple[np.ndarray, float, int, np.ndarray | None]:
    """Step 3: LP rounds adding violated triangles; (triangles, proven LP bound, rounds, reduced costs at it)."""
    lay = pairlp.layout(model)
    ub = np.ones(lay.num_vars)
    tri = np.zeros((0, 4), dtype=np.int64)
    bound, rounds, reduced = -np.inf, 0, None
    while time.monotonic() < deadline:
        all_rows = pairlp.Rows.concat([rows, pairlp.triangle_rows(tri)])
        lp = linprog.build(cost, const, ub, np.zeros(lay.num_vars, dtype=bool), all_rows)
        res = linprog.solve(lp, "highs", time_limit_s=deadline - time.monotonic(), lp_barrier=True, duals=True)
        rounds += 1
        if res.values is None or res.duals is None:
            break
        value, red = linprog.dual_bound_and_reduced(cost, const, ub, all_rows, res.duals)
        if value > bound:
            bound, reduced = value, red
        new = pairlp.violated_triangles(model, res.values)
        if not new.size:
            break
        tri = np.concatenate([tri, new])
    return tri, bound, rounds, reduced


def reduced_cost_fixing(bound: float, reduced: np.ndarray, upper: float, num_fixable: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(lb, ub) of the binaries that no plan cheaper than `upper` can move: x_j = 1 costs at least
    bound + d_j, x_j = 0 at least bound - d_j (d < 0)."""
    margin = 1e-7 * max(1.0, abs(upper))
    lb, ub = np.zeros(reduced.size), np.ones(reduced.size)
    fix = np.arange(reduced.size) < num_fixable
    ub[fix & (bound + reduced > upper + margin)] = 0.0
    lb[fix & (bound - reduced > upper + margin)] = 1.0
    return lb, ub


def run_exact(problem: Problem, config: SolveConfig, hint: np.ndarray | None, name: str,
              integer_solve: IntegerSolve) -> SolveResult:
    start = time.monotonic()
    deadline = start + config.time_limit_s
    check_exact_size(problem, name)
    model = build_pair_model(problem)
    best, origin = start_plan(problem, config, hint)
    best_obj = objective(problem, best)
    cost, const = pairlp.objective(model)
    rows = pairlp.base_rows(model)
    lay = pairlp.layout(model)
    tri, lp_bound, lp_rounds, reduced = separate(model, cost, const, rows, start + LP_SHARE * config.time_limit_s)
    lb, ub = np.zeros(lay.num_vars), np.ones(lay.num_vars)
    if reduced is not None:
        lb, ub = reduced_cost_fixing(lp_bound, reduced, best_obj, lay.g0)
    bound = lp_bound
    proven = False
    rounds = 0
    while time.monotonic() < deadline and bound < best_obj - 1e-9 * max(1.0, best_obj):
        rounds += 1
        hint_values = encode(model, canonical(model, fill_slots(model, best, problem.experts_per_gpu,
                                                                problem.num_gpus)))
        att = integer_solve(model, pairlp.Rows.concat([rows, pairlp.triangle_rows(tri)]), hint_values,
                            deadline - time.monotonic(), lb, ub)
        # the fixings keep every plan cheaper than the incumbent, so the incumbent caps the bound
        bound = max(bound, min(att.bound, best_obj))
        if att.values is None:
            proven = att.optimal
            break
        broken = pairlp.violated_triangles(model, att.values, tol=0.5)
        if broken.size:
            tri = np.concatenate([tri, broken])
            continue
        plan = decode(model, att.values, problem.gpus_per_node)
        if is_feasible(problem, plan):
            obj = objective(problem, plan)
            if obj < best_obj:
                best, best_obj, origin = plan, obj, name
        proven = att.optimal
        break
    status = STATUS_FEASIBLE
    if bound >= best_obj - 1e-9 * max(1.0, best_obj) or (
            proven and best_obj <= bound + 1e-7 * max(1.0, abs(best_obj))):
        status = STATUS_OPTIMAL
        bound = min(bound, best_obj)
    else:
        bound = min(bound, best_obj) - 1e-9 * abs(bound)
    stop = "optimal" if status == STATUS_OPTIMAL else "time_limit"
    return SolveResult(solver=name, item_gpu_I=best, objective=best_obj, bound=float(max(bound, 0.0)),
                       status=status, wall_time_s=time.monotonic() - start, work=float(rounds),
                       stop_reason=stop,
                       details={"plan_from": origin, "integer_rounds": rounds, "lp_rounds": lp_rounds,
                                "lp_bound": lp_bound, "triangles": int(tri.shape[0]),
                                "fixed": int((lb > 0).sum() + (ub < 1).sum()),
                                "pair_variables": model.num_pairs * len(model.levels),
                                "levels": [lv.name for lv in model.levels]})
