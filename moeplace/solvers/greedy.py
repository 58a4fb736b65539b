"""The first backend: greedy construction plus exact-delta swap local search with kicks.

From every start (the hint, the greedy construction of `construct.py`, layer-major) run the local search of
`search.py` to a local optimum, then iterate from the best: kick (random swaps inside a pod), descend, keep
the better plan. Work is counted in exact evaluations, so the same inputs and seed give the same plan as
long as the search stops on convergence or `work_limit`, not on the wall-clock limit (`budget.py`). The
starts get a fixed share of the default budget, never a share of the limit given, so that a larger
`work_limit` continues the same search.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from moeplace.placement.problem import Problem
from moeplace.solvers.affinity import Affinity, build_affinity
from moeplace.solvers.base import STATUS_FEASIBLE, SolveConfig, SolveResult
from moeplace.solvers.budget import STOP_CONVERGED, STOP_INTERRUPTED, STOP_TIME, Budget
from moeplace.solvers.construct import construct
from moeplace.solvers.registry import register_solver
from moeplace.solvers.search import LocalSearch, descend

WORK_PER_ITEM = 22  # default work limit: 22 evaluations per item (about 40,000 for the seed)
MAX_FAILED_KICKS = 30  # iterated local search stops after this many kicks in a row that gain nothing


@dataclass
class Incumbent:
    """The best plan so far and the search that produced it."""

    search: LocalSearch
    item_gpu: np.ndarray
    objective: float
    start: str
    history: list = field(default_factory=list)
    stop: str = "converged"


def multi_start(problem: Problem, config: SolveConfig, hint: np.ndarray | None, aff: Affinity,
                rng: np.random.Generator, budget: Budget, work_budget: float) -> Incumbent:
    """Steps 1-4 from every start (the hint, the greedy construction, layer-major); keep the best.

    work_budget: work units for all starts together (each gets an equal share), capped by `budget`; it must
    not depend on the total work limit, or a larger limit would not continue the same search.
    """
    from moeplace.placement.baselines import layer_major
    from moeplace.placement.cost import objective
    from moeplace.placement.validate import is_feasible

    starts: list[tuple[str, np.ndarray]] = []
    origin = config.origin_gpu_I
    if origin is not None:
        starts.append(("origin", origin.copy()))   # re-planning: every other start moves too much
    else:
        if hint is not None:
            starts.append(("hint", hint.copy()))
        starts.append(("greedy", construct(problem, aff, rng)))
        lm = layer_major(problem)
        if is_feasible(problem, lm):
            starts.append(("layer-major", lm))
    search = LocalSearch(problem, aff, starts[0][1], origin=origin, max_moves=config.max_moves,
                         move_cost=config.move_cost)
    best: Incumbent | None = None
    per_start = work_budget / len(starts)
    for name, init in starts:
        search.reset(init)
        obj0 = objective(problem, init) + search.move_cost * search.moved
        history = best.history if best else []
        try:
            obj, stop = descend(search, rng, budget.sub(search.evals + per_start), history, config.progress, obj0)
        except KeyboardInterrupt:
            obj, stop = objective(problem, search.item_gpu), "interrupted"
        if best is None or obj < best.objective:
            best = Incumbent(search, search.item_gpu.copy(), obj, name, history, stop)
        best.stop = stop
        if stop in (STOP_TIME, STOP_INTERRUPTED) or budget.exhausted(search.evals):
            break
    assert best is not None
    search.reset(best.item_gpu)
    return best


def iterate_kicks(inc: Incumbent, problem: Problem, config: SolveConfig, rng: np.random.Generator,
                  budget: Budget, max_kicks: int | None = None) -> tuple[int, int]:
    """Iterated local search: kick, descend, keep the better plan. Returns (kicks, accepted)."""
    search = inc.search
    kicks = accepted = failed = 0
    kick_size = max(2, problem.num_items // 100)
    try:
        while not budget.exhausted(search.evals) and (max_kicks is None or kicks < max_kicks):
            if failed >= MAX_FAILED_KICKS:
                inc.stop = STOP_CONVERGED
                break
            kicks += 1
            obj = inc.objective + search.kick(rng, kick_size)
            obj, inc.stop = descend(search, rng, budget, inc.history, config.progress, obj)
            if obj < inc.objective - 1e-9 * max(1.0, inc.objective):
                inc.objective, inc.item_gpu = obj, search.item_gpu.copy()
                accepted += 1
                failed = 0
            else:
                search.reset(inc.item_gpu)
                failed += 1
    except KeyboardInterrupt:
        inc.stop = "interrupted"
        search.reset(inc.item_gpu)
    return kicks, accepted


def stop_reason(inc: Incumbent, budget: Budget) -> str:
    """interrupted, else the first of the budget's stops that fired (work_limit, time_limit), else converged."""
    if inc.stop == STOP_INTERRUPTED:
        return STOP_INTERRUPTED
    return budget.fired or STOP_CONVERGED


def moves_details(inc: Incumbent, config: SolveConfig) -> dict:
    if config.origin_gpu_I is None:
        return {}
    moved = int((inc.item_gpu != config.origin_gpu_I).sum())
    return {"moved_experts": moved, "max_moves": config.max_moves, "move_cost": config.move_cost}


@register_solver("greedy", "greedy affinity construction + exact-delta swap local search with kicks (any size)",
                 replanning=True, work_budgeted=True)
def solve_greedy(problem: Problem, config: SolveConfig, hint: np.ndarray | None = None) -> SolveResult:
    """Multi-start local search, then iterated local search from the best start until a limit."""
    from moeplace.placement.cost import objective

    start = time.monotonic()
    default_work = float(WORK_PER_ITEM * problem.num_items)
    budget = Budget(default_work if config.work_limit is None else config.work_limit, config.time_limit_s)
    rng = np.random.default_rng(config.seed)
    aff = build_affinity(problem.traffic)
    inc = multi_start(problem, config, hint, aff, rng, budget, default_work / 2)
    kicks, accepted = (0, 0)
    if inc.stop != STOP_INTERRUPTED:
        kicks, accepted = iterate_kicks(inc, problem, config, rng, budget)
    final = objective(problem, inc.item_gpu)
    return SolveResult(solver="greedy", item_gpu_I=inc.item_gpu, objective=final, bound=0.0, status=STATUS_FEASIBLE,
                       wall_time_s=time.monotonic() - start, work=float(inc.search.evals),
                       stop_reason=stop_reason(inc, budget), work_limit=budget.work_limit,
                       details={"best_start": inc.start, "kicks": kicks, "kicks_accepted": accepted,
                                **moves_details(inc, config)})
