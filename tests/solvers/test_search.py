"""The local search, the exact two-node window, re-planning and Ctrl-C."""

import itertools

import numpy as np
import pytest

from moeplace.placement.builder import build_problem
from moeplace.placement.cost import objective
from moeplace.placement.presets import load_cluster, load_model
from moeplace.solvers import SolveConfig, solve
from moeplace.solvers.affinity import build_affinity
from moeplace.solvers.search import LocalSearch
from moeplace.solvers.window import repartition_pair
from moeplace.topologies.base import TierCosts
from moeplace.traces.synth import synthesize
from tests.guards import HANG_GUARD_S


def problem(num_experts=8, layers=3, nodes=6, gpn=4, top_k=2, flow="chain", seed=0, affinity=0.7):
    model = load_model(None, name="t", num_layers=layers, dense_layers=[], num_experts=num_experts, top_k=top_k,
                       hidden=64, expert_hidden=32, num_heads=1, head_dim=64)
    cluster = load_cluster(None, num_nodes=nodes, gpus_per_node=gpn,
                           topology={"nodes_per_leaf": 2, "leaves_per_pod": 2})
    stats = synthesize(layers, num_experts, top_k, num_tokens=400, affinity=affinity, seed=seed)
    return build_problem(model, cluster, stats, flow=flow, tier_costs=TierCosts((0, 0.05, 1, 2, 3)))


@pytest.mark.parametrize("flow,top_k,a,b", [("chain", 2, 0, 1), ("chain", 2, 0, 5), ("ep", 2, 1, 4),
                                            ("chain", 3, 2, 3), ("chain", 3, 0, 5), ("ep", 4, 0, 1)])
def test_window_finds_the_best_split_of_two_nodes(flow, top_k, a, b):
    p = problem(flow=flow, top_k=top_k)
    rng = np.random.default_rng(1)
    start = rng.permutation(p.num_gpus)[: p.num_items]
    search = LocalSearch(p, build_affinity(p.traffic), start)
    gpn = p.gpus_per_node
    on = [int(i) for g in range(a * gpn, (a + 1) * gpn) for i in search.gpu_items[g] if i >= 0] + \
         [int(i) for g in range(b * gpn, (b + 1) * gpn) for i in search.gpu_items[g] if i >= 0]
    n_a = sum(1 for g in range(a * gpn, (a + 1) * gpn) if search.gpu_items[g, 0] >= 0)
    best = np.inf
    for side_a in itertools.combinations(on, n_a):
        trial = start.copy()
        rest = [i for i in on if i not in side_a]
        trial[list(side_a)] = a * gpn + np.arange(n_a)
        trial[rest] = b * gpn + np.arange(len(rest))
        best = min(best, objective(p, trial))
    before = objective(p, start)
    delta = repartition_pair(search, a, b)
    after = objective(p, search.item_gpu)
    assert after == pytest.approx(before + delta, rel=1e-9)
    assert after == pytest.approx(min(best, before), rel=1e-9)


def test_local_search_deltas_are_exact():
    p = problem()
    search = LocalSearch(p, build_affinity(p.traffic), np.arange(p.num_items))
    obj = objective(p, search.item_gpu)
    rng = np.random.default_rng(0)
    for _ in range(30):
        i, g = int(rng.integers(p.num_items)), int(rng.integers(p.num_gpus))
        obj += search.force_swap(i, int(search.gpu_items[g, 0]), g)
        assert obj == pytest.approx(objective(p, search.item_gpu), rel=1e-9)


@pytest.mark.parametrize("solver", ["greedy", "lns"])
def test_replanning_respects_the_move_budget(solver):
    old = problem(seed=0, affinity=0.2)
    new = problem(seed=9, affinity=0.9)
    origin = solve(old, SolveConfig(work_limit=1500), solver=solver).item_gpu_I
    objectives = []
    for max_moves in (0, 2, 6, None):
        r = solve(new, SolveConfig(work_limit=800, origin_gpu_I=origin, max_moves=max_moves), solver=solver)
        moved = int((r.item_gpu_I != origin).sum())
        if max_moves is not None:
            assert moved <= max_moves
        objectives.append(r.objective)
    assert objectives[0] == pytest.approx(objective(new, origin))
    assert objectives[-1] <= objectives[1] <= objectives[0] + 1e-9
    assert objectives[-1] < objectives[0]


def test_move_cost_keeps_the_plan_when_moves_are_dear():
    new = problem(seed=9, affinity=0.9)
    origin = np.arange(new.num_items)
    r = solve(new, SolveConfig(work_limit=1000, origin_gpu_I=origin, move_cost=1e12))
    assert np.array_equal(r.item_gpu_I, origin)


def test_solver_without_replanning_is_refused():
    from moeplace.errors import InputError
    from moeplace.solvers.registry import _REPLANNING, available_solvers

    others = sorted(set(available_solvers()) - _REPLANNING)
    if not others:
        pytest.skip("every registered solver can re-plan")
    p = problem()
    with pytest.raises(InputError, match="cannot re-plan"):
        solve(p, SolveConfig(origin_gpu_I=np.arange(p.num_items)), solver=others[0])


@pytest.mark.parametrize("solver", ["greedy", "lns"])
def test_ctrl_c_keeps_the_best_plan(solver):
    p = problem(nodes=12)
    calls = []

    def progress(info):
        calls.append(info)
        if len(calls) == 2:
            raise KeyboardInterrupt

    r = solve(p, SolveConfig(work_limit=10**9, time_limit_s=HANG_GUARD_S, progress=progress), solver=solver)
    assert r.stop_reason == "interrupted"
    assert r.objective == pytest.approx(objective(p, r.item_gpu_I))
