"""LP bounds: never above the true optimum, never below the combinatorial bound where they apply."""

import numpy as np
import pytest

from moeplace.solvers import SolveConfig, linprog, pairlp, solve
from moeplace.solvers.bounds import combinatorial_bound
from moeplace.solvers.lp_bound import pair_lp_bound, strong_bound, window_bound, windows
from moeplace.solvers.pairmodel import build_pair_model
from tests.guards import HANG_GUARD_S
from tests.solvers.exact_cases import CASES, brute_force, instance, problem


@pytest.mark.parametrize("name", list(CASES))
def test_pair_lp_bound_is_a_bound_and_beats_the_combinatorial_one(name):
    p = problem(name)
    b = pair_lp_bound(p, time_limit_s=HANG_GUARD_S)
    assert b.value <= brute_force(name) + 1e-9
    assert b.value >= combinatorial_bound(p) - 1e-9


def test_safe_dual_bound_holds_for_any_multipliers():
    p = problem("chain")
    m = build_pair_model(p)
    cost, const = pairlp.objective(m)
    rows = pairlp.Rows.concat([pairlp.base_rows(m), pairlp.triangle_rows(pairlp.all_triangles(m))])
    ub = np.ones(cost.size)
    lp = linprog.build(cost, const, ub, np.zeros(cost.size, dtype=bool), rows)
    res = linprog.solve(lp, "highs", time_limit_s=HANG_GUARD_S, duals=True)
    assert linprog.safe_dual_bound(cost, const, ub, rows, res.duals) == pytest.approx(res.objective, rel=1e-6)
    rng = np.random.default_rng(0)
    for _ in range(5):
        y = res.duals + rng.normal(scale=0.5, size=res.duals.size)
        assert linprog.safe_dual_bound(cost, const, ub, rows, y) <= res.objective + 1e-7


def test_windows_cover_every_hyperedge_once():
    chain = instance(4, 4, 8, 2)
    span, parts = windows(chain)
    assert span == 2 and len(parts) == 3
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(chain.traffic.num_edges))
    ep = instance(3, 4, 6, 2, flow="ep")
    span, parts = windows(ep)
    assert span == 1 and len(parts) == 3


@pytest.mark.parametrize("flow", ["chain", "ep"])
def test_window_bound_is_below_the_exact_optimum(flow):
    p = instance(3, 4, 3, 4, flow=flow, nodes_per_leaf=3)
    exact = solve(p, SolveConfig(time_limit_s=HANG_GUARD_S), solver="ilp")
    assert exact.status == "optimal"
    b = window_bound(p, time_limit_s=HANG_GUARD_S)
    assert 0 < b.value <= exact.objective + 1e-9


def test_front_door_attaches_the_strong_bound_when_asked():
    p = problem("chain")
    r = solve(p, SolveConfig(time_limit_s=5, work_limit=200, strong_bound_s=10), solver="greedy")
    assert r.details["bound_method"] == "pair-lp"
    assert r.bound >= combinatorial_bound(p) - 1e-9
    assert r.bound <= brute_force("chain") + 1e-9
    assert strong_bound(p, 10).value == pytest.approx(r.bound, rel=1e-9) or r.bound == r.objective


def test_default_window_bound_runs_only_on_wide_hyperedges_and_is_a_deterministic_bound():
    from moeplace.solvers.lp_bound import default_window_bound

    assert default_window_bound(instance(3, 4, 3, 4)) is None  # top-2 chain: the node LP is the default's bound
    ep = instance(3, 4, 3, 4, flow="ep", nodes_per_leaf=3)  # dispatch from HOME, which the node LP does not see
    exact_ep = solve(ep, SolveConfig(time_limit_s=HANG_GUARD_S), solver="ilp")
    assert 0 < default_window_bound(ep).value <= exact_ep.objective + 1e-9
    p = instance(3, 4, 3, 4, top_k=3, nodes_per_leaf=3)
    exact = solve(p, SolveConfig(time_limit_s=HANG_GUARD_S), solver="ilp")
    assert exact.status == "optimal"
    b = default_window_bound(p)
    assert b is not None and 0 < b.value <= exact.objective + 1e-9
    assert b.details["clock"] is False and "safety net" not in b.method
    assert b.details["rounds"] <= 2 * b.details["windows"]
    assert default_window_bound(p).value == b.value  # rounds, not the clock, decide it
    r = solve(p, SolveConfig(time_limit_s=HANG_GUARD_S, work_limit=200), solver="greedy")
    assert r.bound >= b.value - 1e-9 or r.bound == r.objective


def test_a_window_cut_short_by_the_clock_says_so(monkeypatch):
    from moeplace.solvers import lp_bound

    p = instance(3, 4, 3, 4, top_k=3, nodes_per_leaf=3)
    assert window_bound(p, time_limit_s=0.0, max_rounds=2).details["clock"] is True
    monkeypatch.setattr(lp_bound, "DEFAULT_WINDOW_LIMIT_S", 0.0)
    cut = lp_bound.default_window_bound(p)
    assert "cut short by its 0 s safety net" in cut.method and "machine's speed" in cut.method


def test_a_strong_bound_cut_short_by_its_limit_says_so_and_a_full_one_does_not():
    p = instance(3, 4, 3, 4, top_k=3, nodes_per_leaf=3)
    cut = strong_bound(p, 0.0)  # no time at all: every stage is cut, whatever the machine's speed
    assert cut.details["clock"] is True and "cut short by the 0 s limit" in cut.method
    full = strong_bound(p, HANG_GUARD_S)  # its work takes milliseconds; the limit is only a hang guard
    assert full.details["clock"] is False and "cut short" not in full.method
    assert full.value >= cut.value - 1e-9


def test_the_strong_bound_skips_the_window_lp_on_top2_chains_past_the_pair_lp():
    from moeplace.solvers.lp_bound import _strong_lp, window_lp_helps

    p = instance(2, 72, 18, 8)  # 144 slots: past the pair LP's 128
    assert not window_lp_helps(p)
    skipped = _strong_lp(p, 60, 1)
    assert skipped.method == "combinatorial" and skipped.details["lp_method"].startswith("window-lp skipped")
    assert window_lp_helps(instance(2, 72, 18, 8, flow="ep")) and window_lp_helps(instance(2, 72, 18, 8, top_k=3))
