"""The default backend: local search plus large-neighbourhood search with exact two-node windows.

Step 1-4  Multi-start greedy construction and exact-delta swap local search (`greedy.py`).
Step 5    Large-neighbourhood sweeps: for every node, with the two nodes it exchanges most traffic with,
          free both nodes' experts and re-split them optimally (`window.py`: every split enumerated, scored
          on the exact objective); then local search again.
Step 6    When a sweep and a descent gain nothing, kick (iterated local search) and keep the better plan.

Progress reports the objective, the proven bound and the gap; Ctrl-C stops the search and keeps the best
plan found. Work is counted deterministically (a window counts as `WINDOW_WORK` evaluations).
"""

from __future__ import annotations

import time

import numpy as np

from moeplace.placement.cost import objective
from moeplace.placement.problem import Problem
from moeplace.solvers.affinity import build_affinity
from moeplace.solvers.base import STATUS_FEASIBLE, SolveConfig, SolveResult
from moeplace.solvers.bounds import combinatorial_bound
from moeplace.solvers.construct import group_matrix
from moeplace.solvers.greedy import Incumbent, iterate_kicks, moves_details, multi_start, stop_reason
from moeplace.solvers.registry import register_solver
from moeplace.solvers.search import descend
from moeplace.solvers.window import repartition_pair

WORK_PER_ITEM = 40  # default work limit: 40 evaluations per item (about 74,000 for the seed)
PATIENCE = 3  # stop after this many rounds (sweep, descent, kicks) without improvement
WINDOW_WORK = 60
PARTNERS = 2


def window_sweep(inc: Incumbent, problem: Problem, rng: np.random.Generator, deadline: float,
                 work_limit: float) -> float:
    """Step 5 over all nodes once; returns the gain (<= 0)."""
    search = inc.search
    N, gpn = problem.num_nodes, problem.gpus_per_node
    M = group_matrix(search.aff, search.item_gpu // gpn, N)
    gain = 0.0
    for a in rng.permutation(N):
        for b in np.argsort(-M[a], kind="stable")[:PARTNERS]:
            if time.monotonic() > deadline or search.evals >= work_limit:
                return gain
            if M[a, b] <= 0:
                break
            before = search.evals
            d = repartition_pair(search, int(a), int(b))
            search.evals = before + WINDOW_WORK
            if d < 0:
                gain += d
                M = group_matrix(search.aff, search.item_gpu // gpn, N) if d < -1e-3 * abs(inc.objective) else M
    return gain


@register_solver("lns", "local search + large-neighbourhood search with exact two-node windows (default)",
                 replanning=True)
def solve_lns(problem: Problem, config: SolveConfig, hint: np.ndarray | None = None) -> SolveResult:
    start = time.monotonic()
    deadline = start + config.time_limit_s
    work_limit = float(WORK_PER_ITEM * problem.num_items if config.work_limit is None else config.work_limit)
    rng = np.random.default_rng(config.seed)
    bound = combinatorial_bound(problem)
    progress = config.progress

    def report(obj: float) -> None:
        if progress is not None:
            progress({"evaluations": inc.search.evals, "objective": obj, "bound": bound,
                      "gap": max(0.0, (obj - bound) / obj) if obj > 0 else 0.0})

    aff = build_affinity(problem.traffic)
    inc = multi_start(problem, config, hint, aff, rng, deadline, work_limit / 4)
    sweeps = kicks = accepted = idle = 0
    windows = problem.experts_per_gpu == 1 and config.origin_gpu_I is None
    try:
        while windows and inc.stop != "interrupted" and time.monotonic() <= deadline and \
                inc.search.evals < work_limit:
            sweeps += 1
            obj = inc.objective + window_sweep(inc, problem, rng, deadline, work_limit)
            obj, inc.stop = descend(inc.search, rng, deadline, work_limit, inc.history, None, obj)
            report(obj)
            improved = obj < inc.objective - 1e-9 * max(1.0, inc.objective)
            inc.objective, inc.item_gpu = obj, inc.search.item_gpu.copy()
            if not improved:
                before = inc.objective
                k, a = iterate_kicks(inc, problem, config, rng, deadline, work_limit, max_kicks=3)
                kicks, accepted = kicks + k, accepted + a
                idle = idle + 1 if inc.objective >= before - 1e-9 * max(1.0, before) else 0
                if idle >= PATIENCE:
                    inc.stop = "converged"
                    break
    except KeyboardInterrupt:
        inc.stop = "interrupted"
    if inc.stop != "interrupted" and not windows:
        k, a = iterate_kicks(inc, problem, config, rng, deadline, work_limit)
        kicks, accepted = kicks + k, accepted + a
    final = objective(problem, inc.item_gpu)
    report(final)
    return SolveResult(solver="lns", item_gpu_I=inc.item_gpu, objective=final, bound=bound, status=STATUS_FEASIBLE,
                       wall_time_s=time.monotonic() - start, work=float(inc.search.evals),
                       stop_reason=stop_reason(inc, deadline, work_limit),
                       details={"best_start": inc.start, "sweeps": sweeps, "kicks": kicks,
                                "kicks_accepted": accepted, **moves_details(inc, config)})
