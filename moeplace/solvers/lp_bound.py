"""Lower bounds stronger than the combinatorial one, from LP relaxations of the pair model.

`pair_lp_bound`  the whole problem's pair model (small instances, <= MAX_EXACT_SLOTS slots): triangle
                 inequalities separated in rounds, each round's value computed safely from its duals.
`window_bound`   any size. The objective is a sum over hyperedges, and every hyperedge lies within a
                 window of consecutive MoE layers (2 for `chain`: a forward from layer l to l+1, a combine
                 inside layer l; 1 for `ep`). Give each hyperedge to one window; then

                     min over plans of sum_w cost_w(plan) >= sum_w min over plans of cost_w(plan),

                 and each window's minimum is bounded below by the LP of its relaxed pair model
                 (`pairmodel.build_window_model`: GPU and node levels only, partners at most a node's
                 capacity). Windows are independent and run in parallel processes.
`strong_bound`   whichever applies, never below the combinatorial bound, with the method named.
"""

from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from moeplace.placement.problem import Problem
from moeplace.placement.traffic import HOME
from moeplace.solvers import linprog, pairlp
from moeplace.solvers.bounds import combinatorial_bound
from moeplace.solvers.pairmodel import MAX_EXACT_SLOTS, PairModel, build_pair_model, build_window_model

MAX_WINDOW_ITEMS = 160  # a window's pair LP has n(n-1)/2 variables per level; above this, no window bound
MAX_ROUNDS = 12
TIME_SHARE = 0.85


@dataclass(frozen=True)
class Bound:
    value: float
    method: str
    wall_time_s: float
    details: dict = field(default_factory=dict)


def lp_rounds(model: PairModel, deadline: float, max_rounds: int = MAX_ROUNDS) -> tuple[float, int, bool]:
    """(proven bound, rounds, converged): LP relaxation with violated triangles added round by round."""
    lay = pairlp.layout(model)
    cost, const = pairlp.objective(model)
    rows = pairlp.base_rows(model)
    ub = np.ones(lay.num_vars)
    tri = np.zeros((0, 4), dtype=np.int64)
    bound, rounds = -np.inf, 0
    while rounds < max_rounds and time.monotonic() < deadline:
        all_rows = pairlp.Rows.concat([rows, pairlp.triangle_rows(tri)])
        lp = linprog.build(cost, const, ub, np.zeros(lay.num_vars, dtype=bool), all_rows)
        res = linprog.solve(lp, "highs", time_limit_s=deadline - time.monotonic(), lp_barrier=True, duals=True)
        rounds += 1
        if res.duals is None:
            break
        bound = max(bound, linprog.safe_dual_bound(cost, const, ub, all_rows, res.duals))
        if res.values is None:
            break
        new = pairlp.violated_triangles(model, res.values)
        if not new.size:
            return bound, rounds, True
        tri = np.concatenate([tri, new])
    return bound, rounds, False


def pair_lp_bound(problem: Problem, time_limit_s: float = 60.0) -> Bound:
    start = time.monotonic()
    value, rounds, done = lp_rounds(build_pair_model(problem), start + time_limit_s)
    clock = not done and rounds < MAX_ROUNDS and time.monotonic() - start >= time_limit_s
    return Bound(max(value, 0.0), "pair-lp", time.monotonic() - start,
                 {"rounds": rounds, "converged": done, "clock": clock})


def windows(problem: Problem) -> tuple[int, list[np.ndarray]]:
    """(window span in MoE layers, hyperedge ids of each window)."""
    tr = problem.traffic
    E, L = problem.model.num_experts, problem.model.num_moe_layers
    members = np.concatenate([tr.src_H[:, None], tr.dst_HK], axis=1)
    layer = np.where(members >= 0, members // E, -1)
    lo = np.where(members >= 0, layer, L).min(axis=1)
    hi = layer.max(axis=1)
    span = int((hi - lo).max()) + 1 if tr.num_edges else 1
    w = np.minimum(lo, max(L - span, 0))
    return span, [np.flatnonzero(w == k) for k in range(max(L - span + 1, 1))]


def _window_task(args: tuple) -> tuple[float, int, bool, bool]:
    """(bound, rounds, converged, the clock cut it short) of one window."""
    problem, items, edges, budget_s, max_rounds = args
    model = build_window_model(problem, items, edges)
    deadline = time.monotonic() + budget_s
    value, rounds, done = lp_rounds(model, deadline, max_rounds)
    return value, rounds, done, not done and time.monotonic() >= deadline


def window_bound(problem: Problem, time_limit_s: float = 60.0, workers: int = 1,
                 max_rounds: int = MAX_ROUNDS) -> Bound | None:
    """The per-window bound, or None when a window is too large for its pair LP. With `max_rounds` small
    enough to finish within the time, the value depends on the rounds only (HiGHS's barrier is deterministic);
    `details["clock"]` says when the time limit cut a window short instead."""
    start = time.monotonic()
    span, parts = windows(problem)
    E = problem.model.num_experts
    if span * E > MAX_WINDOW_ITEMS:
        return None
    tasks = []
    waves = -(-len(parts) // max(1, workers))
    budget_s = TIME_SHARE * time_limit_s / waves  # the rest covers building, process start and the last round
    for k, edges in enumerate(parts):
        items = np.arange(k * E, min(k + span, problem.model.num_moe_layers) * E)
        tasks.append((problem, items, edges, budget_s, max_rounds))
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_window_task, tasks))
    else:
        results = [_window_task(t) for t in tasks]
    value = float(sum(max(b, 0.0) for b, _, _, _ in results))
    name = f"window-lp ({len(parts)} windows of {span} layer{'s' if span != 1 else ''})"
    return Bound(value, name, time.monotonic() - start,
                 {"windows": len(parts), "span": span, "converged": sum(c for _, _, c, _ in results),
                  "rounds": sum(r for _, r, _, _ in results), "clock": any(f for _, _, _, f in results)})


WIDE_TARGETS = 3          # hyperedges of this many targets or more: where the node LP's linear 1/k is loose
DEFAULT_WINDOW_ROUNDS = 2  # FLAME-MoE (planning half), 1-4 rounds: 560k / 621k / 629k / 629k, 3 / 8 / 16 / 25 s CPU
DEFAULT_WINDOW_LIMIT_S = 300.0  # a safety net only: 2 rounds of FLAME-MoE's 7 windows take about 8 s


def window_lp_helps(problem: Problem) -> bool:
    """Where the window LP beats the node LP with the domain profiles (measured, benchmarks/RESULTS.md):
    hyperedges of `WIDE_TARGETS` or more targets (FLAME-MoE's top-6: 632k against 521k), or dispatch from
    HOME (ep flows, which the node LP does not see: the seed's EP layout 2.30M against the combinatorial
    1.90M). On top-2 chains the node LP is stronger (the seed 1.89M against 1.53M, Mixtral 282k against 262k)."""
    tr = problem.traffic
    if tr.num_edges == 0:
        return False
    return bool((tr.src_H == HOME).any()) or int((tr.dst_HK >= 0).sum(axis=1).max()) >= WIDE_TARGETS


def default_window_bound(problem: Problem) -> Bound | None:
    """Every solve's window LP where it helps (`window_lp_helps`) and the problem has at most the node LP's
    `LARGE_ITEMS` items (Qwen3-30B's EP layout, 48 windows of 128 experts, would cost minutes). A fixed
    number of triangle rounds per window decides the value, so the same problem gives the same bound on any
    machine; a window the safety net cuts short is named in the method."""
    from moeplace.solvers.node_lp import LARGE_ITEMS

    if problem.num_items > LARGE_ITEMS or not window_lp_helps(problem):
        return None
    found = window_bound(problem, DEFAULT_WINDOW_LIMIT_S, 1, DEFAULT_WINDOW_ROUNDS)
    if found is None or not found.details["clock"]:
        return found
    return dataclasses.replace(found, method=f"{found.method}, cut short by its {DEFAULT_WINDOW_LIMIT_S:g} s "
                                             "safety net (depends on this machine's speed)")


def strong_bound(problem: Problem, time_limit_s: float = 60.0, workers: int = 1) -> Bound:
    """The strongest bound this module proves within the time, never below the combinatorial bound. The
    work is set by the limit (node-LP rounds, price steps, LP rounds a window), so the value is the same on
    any machine unless the limit's clock cuts a stage short: then `details["clock"]` is True and the method
    says so."""
    from moeplace.solvers.domain_bound import strong_domain_budget
    from moeplace.solvers.node_lp import NodeBudget, node_tier_bound

    start = time.monotonic()
    budget = NodeBudget(rounds=2 + int(time_limit_s // 20), per_round=5_000, time_limit_s=time_limit_s, secants=True)
    node_value, node_method, node_details = node_tier_bound(problem, budget, strong_domain_budget(time_limit_s))
    remaining = time_limit_s - (time.monotonic() - start)
    best = _strong_lp(problem, remaining, workers)
    clock = bool(node_details.get("clock") or best.details.get("clock"))
    if node_value > best.value:
        found = Bound(node_value, node_method, time.monotonic() - start,
                      {**node_details, "lp": best.value, "lp_method": best.method})
    else:
        found = Bound(best.value, best.method, time.monotonic() - start, best.details)
    found.details["clock"] = clock
    if clock:
        found = dataclasses.replace(found, method=f"{found.method}, cut short by the {time_limit_s:g} s limit "
                                                  "(depends on this machine's speed)")
    return found


def _strong_lp(problem: Problem, time_limit_s: float, workers: int) -> Bound:
    """The pair LP (<= MAX_EXACT_SLOTS slots), else the window LP where it helps, in the time left;
    `details["clock"]` when the time cut it short or left none for it."""
    start = time.monotonic()
    comb = combinatorial_bound(problem)
    exact = problem.num_gpus * problem.experts_per_gpu <= MAX_EXACT_SLOTS
    if not exact and not window_lp_helps(problem):
        # top-2 chains: the node LP with the domain profiles is the stronger bound, and the time goes to it
        return Bound(comb, "combinatorial", 0.0, {"lp_method": "window-lp skipped (top-2 chain: the node LP is "
                                                                "stronger)", "clock": False})
    if time_limit_s <= 0:
        return Bound(comb, "combinatorial", 0.0, {"clock": True})
    if exact:
        found: Bound | None = pair_lp_bound(problem, time_limit_s)
    else:
        found = window_bound(problem, time_limit_s, workers or os.cpu_count() or 1)
    clock = bool(found is not None and found.details.get("clock"))
    if found is None or found.value <= comb:
        lp = {} if found is None else {"lp": found.value, "lp_method": found.method}
        return Bound(comb, "combinatorial", time.monotonic() - start, {**lp, "clock": clock})
    return Bound(found.value, found.method, time.monotonic() - start, {**found.details, "combinatorial": comb})
