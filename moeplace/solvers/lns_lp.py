"""LP-guided large-neighbourhood search (issue 13 part 4): the node-matching LP's fractional solution chooses
the windows.

The `lns` plan is the start. The node-matching LP (`node_lp.py`, the default bound's 2 rounds) gives a
fractional co-location y[a, b] for every pair with traffic: how much the relaxation wants a and b on one node.
Where the plan splits a pair the LP wants together, the two nodes holding it are a neighbourhood the LP
disagrees with: nodes (n, m) are scored by the sum of y over the pairs split between them, and the
`LP_WINDOWS_PER_NODE x nodes` best-scored node pairs are re-split exactly (`window.repartition_pair`), then
local search descends (the windows' work, `WINDOW_WORK` each, is counted apart). Rounds repeat (the
disagreement is recomputed on the new plan) until one gains nothing or `LP_ROUNDS` ran. Every step only
accepts improvements, so the plan is never worse than its `lns` start (and is that start past
`node_lp.LARGE_ITEMS` items, where the default skips the LP). Deterministic: the windows' order is a stable
sort of the scores, the descent's generator is seeded from the config, and the extra work is a fixed count
(`LP_WORK_PER_ITEM` evaluations per item); the clock is only the safety net.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from moeplace.placement.cost import objective
from moeplace.placement.problem import Problem
from moeplace.solvers.affinity import build_affinity
from moeplace.solvers.base import SolveConfig, SolveResult
from moeplace.solvers.budget import STOP_TIME, Budget
from moeplace.solvers.lns import WINDOW_WORK, solve_lns
from moeplace.solvers.node_lp import default_budget, node_lp_bound
from moeplace.solvers.registry import register_solver
from moeplace.solvers.search import LocalSearch, descend
from moeplace.solvers.window import repartition_pair

LP_ROUNDS = 6             # disagreement rounds at most
LP_WINDOWS_PER_NODE = 2   # windows per round: this many per node, best disagreement first
LP_WORK_PER_ITEM = 20     # extra evaluations per item for the descents after the windows


def disagreement(pairs: np.ndarray, y: np.ndarray, node_I: np.ndarray, num_nodes: int) -> np.ndarray:
    """float [nodes, nodes], symmetric: sum of the LP's y over the pairs the plan splits between two nodes."""
    na, nb = node_I[pairs[:, 0]], node_I[pairs[:, 1]]
    split = na != nb
    D = np.zeros((num_nodes, num_nodes))
    np.add.at(D, (na[split], nb[split]), y[split])
    return D + D.T


def lp_windows(D: np.ndarray, count: int) -> list[tuple[int, int]]:
    """The `count` node pairs (a < b) of highest disagreement > 0, in a stable order."""
    a, b = np.triu_indices(D.shape[0], k=1)
    score = D[a, b]
    order = np.argsort(-score, kind="stable")[:count]
    return [(int(a[k]), int(b[k])) for k in order if score[k] > 0]


@register_solver("lns-lp", "lns, then windows chosen where the node-matching LP disagrees with the plan",
                 work_budgeted=True)
def solve_lns_lp(problem: Problem, config: SolveConfig, hint: np.ndarray | None = None) -> SolveResult:
    start = time.monotonic()
    base = solve_lns(problem, config, hint)
    same = dataclasses.replace(base, solver="lns-lp")
    b = default_budget(problem)  # none past node_lp.LARGE_ITEMS: the LP would take minutes and gigabytes
    if b is None or problem.experts_per_gpu != 1 or config.origin_gpu_I is not None or problem.node_capacity <= 1:
        return same
    solution: dict = {}
    node_lp_bound(problem, b.rounds, b.iteration_limit, max(1.0, config.time_limit_s - (time.monotonic() - start)),
                  b.per_round, b.barrier, b.ipm_tolerances, solution=solution)
    if not solution:
        return same
    pairs, y = solution["pairs"], solution["y"]
    N, gpn = problem.num_nodes, problem.gpus_per_node
    search = LocalSearch(problem, build_affinity(problem.traffic), base.item_gpu_I)
    budget = Budget(float(LP_WORK_PER_ITEM * problem.num_items),
                    max(1.0, config.time_limit_s - (time.monotonic() - start)))
    rng = np.random.default_rng(config.seed + 1)
    best, best_obj, obj = base.item_gpu_I.copy(), base.objective, base.objective
    rounds = windows = 0
    for _ in range(LP_ROUNDS):
        rounds += 1
        before = obj
        D = disagreement(pairs, y, search.item_gpu // gpn, N)
        chosen = lp_windows(D, LP_WINDOWS_PER_NODE * N)
        for a, c in chosen:
            obj += repartition_pair(search, a, c)
        windows += len(chosen)   # counted apart: the descents' budget is LP_WORK_PER_ITEM per item
        obj, _ = descend(search, rng, budget, [], None, obj)
        if obj < best_obj - 1e-9 * max(1.0, best_obj):
            best, best_obj = search.item_gpu.copy(), obj
        if obj >= before - 1e-9 * max(1.0, before) or budget.exhausted(search.evals):
            break
    final = objective(problem, best)
    if final >= base.objective:
        best, final = base.item_gpu_I, base.objective
    return dataclasses.replace(base, solver="lns-lp", item_gpu_I=best, objective=final,
                               wall_time_s=time.monotonic() - start,
                               stop_reason=STOP_TIME if budget.fired == STOP_TIME else base.stop_reason,
                               work=base.work + float(search.evals + WINDOW_WORK * windows),
                               work_limit=base.work_limit + budget.work_limit
                               + float(WINDOW_WORK * LP_ROUNDS * LP_WINDOWS_PER_NODE * N),
                               details={**base.details, "lp_rounds": rounds, "lp_windows": windows,
                                        "lp_gain": round(base.objective - final, 3)})
