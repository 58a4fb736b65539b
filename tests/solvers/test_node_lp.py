"""The node-tier matching LP bound: never above a known optimum, never below the combinatorial bound."""

import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from moeplace.placement.cost import objective
from moeplace.solvers import SolveConfig, solve
from moeplace.solvers.bounds import combinatorial_bound, combinatorial_terms
from moeplace.solvers.node_lp import NodeBudget, build_node_lp, node_lp_bound, node_tier_bound
from moeplace.solvers.qap import partition_problem, read_qaplib
from tests.solvers.exact_cases import CASES, brute_force, instance, problem, remote_nodes
from tests.guards import HANG_GUARD_S

QAPLIB = Path(__file__).resolve().parents[1] / "data" / "qaplib"
STRONG = NodeBudget(rounds=6, per_round=1000)


def _node_count(p, item_gpu_I) -> float:
    """sum_h w_h G_node(h) over item-sourced hyperedges of a plan, straight from the definition."""
    return remote_nodes(p, item_gpu_I)


def test_terms_sum_to_the_combinatorial_bound():
    for name in CASES:
        p = problem(name)
        assert sum(combinatorial_terms(p).values()) == pytest.approx(combinatorial_bound(p), rel=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_bound_is_below_the_brute_force_optimum(name):
    p = problem(name)
    for budget in (NodeBudget(rounds=1), STRONG):
        value, method, _ = node_tier_bound(p, budget)
        assert combinatorial_bound(p) - 1e-9 <= value <= brute_force(name) + 1e-9, (method, value)


def test_node_count_is_below_every_random_plan_s():
    """The LP's node term bounds the node count of any plan, not only the optimum's objective."""
    rng = np.random.default_rng(0)
    p = instance(3, 8, 6, 4, seed=4)
    lp, _, _ = node_lp_bound(p, rounds=6, per_round=500)
    counts = [_node_count(p, rng.permutation(p.num_gpus)) for _ in range(30)]
    best = solve(p, SolveConfig(time_limit_s=HANG_GUARD_S, work_limit=2000), solver="lns").item_gpu_I
    counts.append(_node_count(p, best))
    assert 0 < lp <= min(counts) + 1e-9


def test_bound_beats_the_combinatorial_one_on_chains_and_holds_against_the_exact_optimum():
    p = instance(3, 4, 3, 4, nodes_per_leaf=3, seed=1)
    exact = solve(p, SolveConfig(time_limit_s=HANG_GUARD_S), solver="ilp")
    assert exact.status == "optimal"
    value, method, _ = node_tier_bound(p, STRONG)
    assert value <= exact.objective + 1e-9
    assert value > combinatorial_bound(p) * 1.01, (value, combinatorial_bound(p))
    assert method.startswith("node-matching-lp")


def _best_partition(F: np.ndarray, parts: int, cap: int) -> float:
    """Exact capacitated partitioning by enumerating the set partitions (first part holds item 0)."""
    n = F.shape[0]
    cut = F + F.T

    def rec(left: tuple[int, ...], k: int) -> float:
        if not left:
            return 0.0
        head, rest = left[0], left[1:]
        best = np.inf
        for others in itertools.combinations(rest, cap - 1):
            group = (head,) + others
            remain = tuple(i for i in rest if i not in others)
            inside = cut[np.ix_(group, remain)].sum()
            best = min(best, inside + rec(remain, k - 1))
        return best

    assert n == parts * cap
    return float(rec(tuple(range(n)), parts))


@pytest.mark.parametrize("name", ["chr12a", "had12"])
def test_qaplib_flows_partitioned_stay_below_their_optimum(name):
    F = read_qaplib(QAPLIB / f"{name}.dat").flow_II.astype(float)
    np.fill_diagonal(F, 0)
    p = partition_problem(F, 3, 4)
    opt = _best_partition(F, 3, 4)
    value, _, _ = node_tier_bound(p, STRONG)
    assert value <= opt + 1e-9
    assert value >= combinatorial_bound(p) - 1e-9
    plan = solve(p, SolveConfig(time_limit_s=HANG_GUARD_S, work_limit=500), solver="lns")
    assert objective(p, plan.item_gpu_I) >= opt - 1e-9


def test_same_problem_same_bound():
    p = instance(4, 8, 8, 4, seed=2)
    assert node_tier_bound(p, STRONG) == node_tier_bound(p, STRONG)


def test_lp_data_charges_each_target_once():
    p = instance(2, 4, 4, 2, seed=0)
    m = build_node_lp(p)
    tr = p.traffic
    item = tr.src_H >= 0
    n_targets = ((tr.dst_HK >= 0) & (tr.dst_HK != tr.src_H[:, None])).sum(axis=1)
    assert m.total_W == pytest.approx(float((tr.bytes_H * n_targets)[item].sum()))


def test_default_budget_is_smaller_past_the_large_size():
    from moeplace.solvers.node_lp import LARGE_ITEMS, default_budget

    p = instance(2, 4, 4, 2, seed=0)
    assert p.num_items <= LARGE_ITEMS and default_budget(p).rounds == 2
    assert default_budget(SimpleNamespace(num_items=LARGE_ITEMS + 1)) is None  # only the size decides


@pytest.mark.parametrize("name", list(CASES))
def test_default_budget_with_loose_tolerances_stays_below_the_optimum(name):
    """The default's interior-point tolerances (1e-5, 1e-6) change which duals come back, never validity."""
    from moeplace.solvers.node_lp import DEFAULT_BUDGET

    assert DEFAULT_BUDGET.ipm_tolerances
    p = problem(name)
    value, _, _ = node_tier_bound(p, DEFAULT_BUDGET)
    assert combinatorial_bound(p) - 1e-9 <= value <= brute_force(name) + 1e-9


def test_separation_finds_every_violated_triangle_most_violated_first():
    """`_violated` (heavy sides only) against the plain enumeration of all centre-neighbour pairs."""
    from moeplace.solvers.node_lp import EPS, _violated

    rng = np.random.default_rng(3)
    I = 40
    k = np.unique(rng.integers(0, I * I, 500))
    a, b = k // I, k % I
    pairs = np.stack([a[a < b], b[a < b]], axis=1)
    y = rng.choice([0.0, 1e-7, 0.3, 0.5, 0.6, 0.9, 1.0], pairs.shape[0])
    ys = {(int(u), int(v)): float(w) for (u, v), w in zip(pairs, y)}
    got_new, got_tri = _violated(pairs, y, I, 10 ** 9)
    want = set()
    for c in range(I):
        on = [(u, v) for (u, v) in ys if ys[u, v] > EPS]
        nbs = sorted({v for (u, v) in on if u == c} | {u for (u, v) in on if v == c})
        for x, z in itertools.combinations(nbs, 2):
            yxc, ycz = ys.get((min(x, c), max(x, c))), ys.get((min(c, z), max(c, z)))
            if yxc + ycz - ys.get((x, z), 0.0) - 1 > EPS:
                want.add((x, c, z))
    assert {tuple(map(int, t)) for t in got_tri} == want
    viol = [ys[min(x, c), max(x, c)] + ys[min(c, z), max(c, z)] - ys.get((x, z), 0.0) for x, c, z in got_tri]
    assert viol == sorted(viol, reverse=True)
    assert {tuple(map(int, q)) for q in got_new} == {(x, z) for x, _, z in want if (x, z) not in ys}


def test_a_round_that_fails_at_the_loose_tolerance_is_solved_again_at_highs_default(monkeypatch):
    from moeplace.solvers import linprog

    p = instance(3, 8, 6, 4, seed=4)
    budget = NodeBudget(rounds=2, per_round=500, ipm_tolerances=(1e-5, 1e-6))
    want, _, _ = node_lp_bound(p, 2, per_round=500, barrier=True)
    real = linprog.solve

    def unknown_when_loose(*args, highs_options=None, **kw):
        if highs_options:
            raise RuntimeError("HighsModelStatus was Unknown")
        return real(*args, **kw)

    monkeypatch.setattr(linprog, "solve", unknown_when_loose)
    got, rounds, _ = node_lp_bound(p, 2, per_round=500, barrier=True, ipm_tolerances=budget.ipm_tolerances)
    assert rounds >= 1 and got == want


def test_secant_rows_hold_against_every_plan_and_tighten_wide_hyperedges():
    """Hyperedges of 3+ targets: the secants of 1/k stay below the enumerated best node count, and add."""
    from tests.solvers.exact_cases import _fill

    p = instance(2, 4, 4, 2, top_k=3, seed=2)
    best = np.inf
    for bins in _fill(p.num_items, [p.gpus_per_node] * p.num_nodes, []):
        node = np.asarray(bins)
        best = min(best, _node_count(p, node * p.gpus_per_node + (np.arange(p.num_items) % 1)))
    plain, _, _ = node_lp_bound(p, rounds=3, per_round=500)
    sec, _, _ = node_lp_bound(p, rounds=3, per_round=500, secants=True)
    assert plain <= sec + 1e-6 <= best + 1e-6, (plain, sec, best)
    wide = instance(3, 8, 6, 4, top_k=4, seed=4)
    a, _, _ = node_lp_bound(wide, rounds=1)
    b, _, _ = node_lp_bound(wide, rounds=1, secants=True)
    assert b > a * 1.001, (a, b)
    rng = np.random.default_rng(0)
    plans = [rng.permutation(wide.num_gpus) for _ in range(20)]
    plans.append(solve(wide, SolveConfig(time_limit_s=HANG_GUARD_S, work_limit=2000), solver="lns").item_gpu_I)
    assert b <= min(_node_count(wide, x) for x in plans) + 1e-9
