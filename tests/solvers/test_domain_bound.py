"""The leaf and pod domain bound: every piece against brute force, and the floor below every plan."""

import itertools

import numpy as np
import pytest

from moeplace.solvers import SolveConfig, solve
from moeplace.solvers.bounds import combinatorial_terms
from moeplace.solvers.domain_bound import (
    DomainBudget,
    Tables,
    best_profile,
    combine_bound,
    domain_terms,
    layered,
    pair_bound,
    profile_value,
)
from moeplace.solvers.node_lp import node_tier_bound
from moeplace.topologies.base import TIER_CORE, TIER_LEAF, TIER_POD, Fabric, default_hosts
from tests.guards import HANG_GUARD_S
from tests.solvers.exact_cases import COSTS, _fill, instance, remote_nodes

DELTA = {"level3": COSTS.array[TIER_POD] - COSTS.array[TIER_LEAF],
         "level4": COSTS.array[TIER_CORE] - COSTS.array[TIER_POD]}


def _beyond(p, item_gpu_I, domain_N) -> float:
    """Remote nodes reached outside the source's domain, bytes-weighted, straight from the definition."""
    return remote_nodes(p, item_gpu_I, domain_N)


def _beyond_fast(p, node_I, domain_N) -> float:
    """The same for many plans: node_I the node of every item."""
    tr = p.traffic
    item = tr.src_H >= 0
    s, d, w = tr.src_H[item], tr.dst_HK[item], tr.bytes_H[item]
    nd = np.where(d >= 0, node_I[np.maximum(d, 0)], -1)
    ns = node_I[s]
    out = (d >= 0) & (d != s[:, None]) & (domain_N[np.maximum(nd, 0)] != domain_N[ns][:, None])
    count = np.zeros(s.size)
    for j in range(d.shape[1]):
        first = out[:, j].copy()
        for j2 in range(j):
            first &= ~(out[:, j2] & (nd[:, j2] == nd[:, j]))
        count += first
    return float(w @ count)


def _all_node_plans(p):
    caps = [p.gpus_per_node] * p.num_nodes
    for bins in _fill(p.num_items, caps, []):
        yield np.asarray(bins)


def _gpu_plan(p, node_I):
    plan = np.empty_like(node_I)
    for n in np.unique(node_I):
        members = np.flatnonzero(node_I == n)
        plan[members] = n * p.gpus_per_node + np.arange(members.size)
    return plan


TINY = {
    "2x4 top-2, leaves of 2 nodes": dict(layers=2, experts=4, nodes=4, gpus_per_node=2, leaves_per_pod=1),
    "2x4 top-3, leaves of 2 nodes": dict(layers=2, experts=4, nodes=4, gpus_per_node=2, top_k=3, seed=2,
                                         leaves_per_pod=1),
    "3x3 top-2, leaf = node of 3": dict(layers=3, experts=3, nodes=3, gpus_per_node=3, nodes_per_leaf=1, seed=1),
    "2x4 strong affinity, pods": dict(layers=2, experts=4, nodes=4, gpus_per_node=2, nodes_per_leaf=1,
                                      leaves_per_pod=2, affinity=0.95, seed=3),
}


@pytest.mark.parametrize("name", list(TINY))
def test_floor_is_below_the_best_plan_by_enumeration(name):
    p = instance(**TINY[name])
    terms = domain_terms(p, DomainBudget(kappas=((0.0, 0.0, 0.0), (0.4, 0.6, 0.5), (1.0, 1.0, 1.0))))
    refined = domain_terms(p, DomainBudget(refine_steps=8, step0=0.5))
    assert terms and refined, "the bound applies to these layered instances"
    fab = p.fabric
    for key, dom in (("level3", fab.node_leaf_N), ("level4", fab.node_pod_N)):
        if key not in terms:
            continue
        best = min(_beyond_fast(p, node_I, dom) for node_I in _all_node_plans(p))
        assert terms[key] / DELTA[key] <= best + 1e-9, (key, terms[key], best)
        assert refined.get(key, 0.0) / DELTA[key] <= best + 1e-9, (key, refined, best)


def test_fast_count_agrees_with_the_definition():
    p = instance(**TINY["2x4 top-3, leaves of 2 nodes"])
    rng = np.random.default_rng(0)
    for _ in range(5):
        node_I = rng.permutation(p.num_gpus) // p.gpus_per_node
        assert _beyond_fast(p, node_I, p.fabric.node_leaf_N) == pytest.approx(
            _beyond(p, _gpu_plan(p, node_I), p.fabric.node_leaf_N))


def test_floor_holds_against_random_and_searched_plans_and_beats_the_combinatorial_terms():
    p = instance(6, 8, 12, 4, nodes_per_leaf=2, leaves_per_pod=3, seed=5)
    terms = domain_terms(p)
    comb = combinatorial_terms(p)
    assert terms["level3"] > comb["level3"] + 1.0 and terms["level4"] > comb["level4"] + 1.0, (terms, comb)
    rng = np.random.default_rng(1)
    plans = [rng.permutation(p.num_gpus) for _ in range(20)]
    plans.append(solve(p, SolveConfig(time_limit_s=HANG_GUARD_S, work_limit=3000), solver="lns").item_gpu_I)
    for key, dom in (("level3", p.fabric.node_leaf_N), ("level4", p.fabric.node_pod_N)):
        floor = terms[key] / DELTA[key]
        assert floor <= min(_beyond(p, plan, dom) for plan in plans) + 1e-9


def test_whole_bound_names_the_domain_profiles_and_stays_below_the_searched_plan():
    p = instance(6, 8, 12, 4, nodes_per_leaf=2, leaves_per_pod=3, seed=5)
    value, method, details = node_tier_bound(p)
    assert "leaf/pod domain profiles" in method
    best = solve(p, SolveConfig(time_limit_s=HANG_GUARD_S, work_limit=3000), solver="lns")
    assert value <= best.objective
    assert details["domain_level3"] > 0


def _max_over_sets(N, c, alpha, beta, a, b):
    n, m = N.shape
    best = -np.inf
    for A in itertools.combinations(range(n), a):
        for B in itertools.combinations(range(m), b):
            v = N[np.ix_(A, B)].sum() + c[list(B)].sum() - alpha[list(A)].sum() - beta[list(B)].sum()
            best = max(best, v)
    return best


def test_pair_bound_is_above_the_exact_maximum_for_every_size():
    rng = np.random.default_rng(3)
    for trial in range(4):
        N = rng.exponential(1.0, (4, 5)) * (rng.random((4, 5)) < 0.7)
        c = rng.exponential(0.5, 5)
        alpha, beta = (rng.normal(0, 0.5, 4), rng.normal(0, 0.5, 5)) if trial else (np.zeros(4), np.zeros(5))
        U = pair_bound(N, c, alpha, beta)
        for a in range(5):
            for b in range(6):
                assert U[a, b] >= _max_over_sets(N, c, alpha, beta, a, b) - 1e-9, (trial, a, b)
        if trial == 0:  # exact at the full sets
            assert U[4, 5] == pytest.approx(N.sum() + c.sum())


def test_combine_bound_is_above_the_exact_maximum():
    rng = np.random.default_rng(4)
    S = rng.exponential(1.0, (6, 6))
    np.fill_diagonal(S, 0.0)
    gamma = rng.normal(0, 0.5, 6)
    C = combine_bound(S, gamma)
    for a in range(7):
        exact = max(S[np.ix_(A, A)].sum() - gamma[list(A)].sum() for A in itertools.combinations(range(6), a))
        assert C[a] >= exact - 1e-9, a


def test_profile_dp_is_the_best_profile_by_enumeration():
    rng = np.random.default_rng(5)
    sizes = np.array([2, 3, 2, 2])
    tab = Tables(U=[rng.normal(0, 1, (sizes[i] + 1, sizes[i + 1] + 1)) for i in range(3)],
                 C=[rng.normal(0, 1, s + 1) for s in sizes], price_sum=0.0)
    price = rng.normal(0, 0.3, 4)
    for cap in (1, 3, 5, 9):
        value, prof = best_profile(tab, sizes, price, cap)
        exact = max(profile_value(tab, np.array(x)) - price @ np.array(x)
                    for x in itertools.product(*[range(s + 1) for s in sizes]) if sum(x) <= cap)
        assert value == pytest.approx(exact)
        assert prof.sum() <= cap and value == pytest.approx(profile_value(tab, prof) - price @ prof)


def test_no_domain_terms_where_the_tiers_do_not_follow_the_domains():
    p = instance(3, 4, 6, 2, nodes_per_leaf=2, leaves_per_pod=3)
    assert "level3" in domain_terms(p)
    tier = p.fabric.node_tier_NN.copy()
    tier[0, 5] = tier[5, 0] = TIER_LEAF  # nodes 0 and 5 sit in different leaves but talk at leaf cost
    fab = Fabric(kind="fat-tree", description="odd", gpus_per_node=2, node_tier_NN=tier,
                 node_leaf_N=p.fabric.node_leaf_N, node_pod_N=p.fabric.node_pod_N, hosts=default_hosts(6))
    from dataclasses import replace
    assert "level3" not in domain_terms(replace(p, fabric=fab))


def test_layered_is_none_for_traffic_that_is_not_layered():
    p = instance(2, 4, 4, 2, flow="ep")
    lay = layered(p)
    assert lay is None or lay.total > 0  # HOME-sourced dispatch is left out; what is left must be layered


def test_refined_prices_never_lose_to_the_grid_and_stay_below_every_plan():
    p = instance(6, 8, 12, 4, nodes_per_leaf=2, leaves_per_pod=3, seed=5)
    grid = domain_terms(p)
    refined = domain_terms(p, DomainBudget(refine_steps=15))
    assert refined["level3"] >= grid["level3"] - 1e-9 and refined["level4"] >= grid["level4"] - 1e-9
    rng = np.random.default_rng(2)
    plans = [rng.permutation(p.num_gpus) for _ in range(10)]
    plans.append(solve(p, SolveConfig(time_limit_s=HANG_GUARD_S, work_limit=3000), solver="lns").item_gpu_I)
    for key, dom in (("level3", p.fabric.node_leaf_N), ("level4", p.fabric.node_pod_N)):
        assert refined[key] / DELTA[key] <= min(_beyond(p, plan, dom) for plan in plans) + 1e-9


def test_usage_is_the_subgradient_of_the_pair_bound():
    """The value the usage vectors come with is pair_bound's, and moving the prices along them predicts
    the change where the selection does not flip."""
    from moeplace.solvers.domain_bound import _pair_usage

    rng = np.random.default_rng(6)
    N = rng.exponential(1.0, (5, 6))
    c = rng.exponential(0.5, 6)
    alpha, beta = rng.normal(0, 0.3, 5), rng.normal(0, 0.3, 6)
    U = pair_bound(N, c, alpha, beta)
    for a in range(6):
        for b in range(7):
            v, ua, ub = _pair_usage(N, c, alpha, beta, a, b)
            assert v == pytest.approx(U[a, b])
            eps = 1e-7
            v2, _, _ = _pair_usage(N, c, alpha + eps * ua, beta + eps * ub, a, b)
            assert v2 == pytest.approx(v - eps * (ua @ ua + ub @ ub), abs=1e-9)
