"""A problem's hyperedges as GPU-to-GPU flows: hand case, and the objective's bytes by tier on every flow model."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.placement.baselines import BASELINES
from moeplace.placement.builder import build_problem
from moeplace.placement.cost import evaluate
from moeplace.placement.gputraffic import bytes_by_tier, problem_gpu_traffic
from moeplace.placement.presets import load_cluster
from moeplace.placement.problem import Problem
from moeplace.placement.traffic import HOME, PAD, Traffic
from moeplace.topologies.base import TierCosts
from moeplace.topologies.routing import link_loads
from moeplace.traces.synth import synthesize


@pytest.fixture
def cluster():
    return load_cluster(None, name="t", num_nodes=4, gpus_per_node=2, nics_per_node=2,
                        topology={"nodes_per_leaf": 2, "leaves_per_pod": 1})


def test_hand_case_dedup_relay_and_home(tiny_model, cluster):
    traffic = Traffic(src_H=np.array([0, HOME]), dst_HK=np.array([[1, 2], [3, PAD]]), bytes_H=np.array([10.0, 8.0]),
                      kind_H=np.array([0, 1], dtype=np.int8), kinds=("forward", "dispatch"), num_items=8)
    stats = synthesize(tiny_model.num_moe_layers, tiny_model.num_experts, tiny_model.top_k, seed=0)
    base = build_problem(tiny_model, cluster, stats)
    problem = Problem(model=tiny_model, cluster=cluster, fabric=base.fabric, flow="chain", dedup=True,
                      tier_costs=TierCosts((0.0, 0.1, 1.0, 2.0, 3.0)), traffic=traffic)
    item_gpu = np.array([0, 2, 3, 5, 1, 4, 6, 7])
    t = problem_gpu_traffic(problem, item_gpu)
    flows = {(int(s), int(d)): float(b) for s, d, b in zip(t.src_gpu_F, t.dst_gpu_F, t.bytes_F)}
    # item 0 (GPU 0) -> items 1, 2 on node 1: once over the network to GPU 2, then NVLink 2 -> 3;
    # HOME -> item 3 (GPU 5): 1/8 of 8 B from every GPU
    expected = {(0, 2): 10.0, (2, 3): 10.0} | {(g, 5): 1.0 for g in range(8)}
    assert flows == expected
    assert np.allclose(bytes_by_tier(problem, t), evaluate(problem, item_gpu).bytes_by_tier)


@pytest.mark.parametrize("flow", ["chain", "ep"])
@pytest.mark.parametrize("dedup", [True, False])
def test_bytes_by_tier_equal_the_objective(tiny_model, cluster, flow, dedup):
    stats = synthesize(tiny_model.num_moe_layers, tiny_model.num_experts, tiny_model.top_k, seed=3)
    problem = build_problem(tiny_model, cluster, stats, flow=flow, dedup=dedup)
    rng = np.random.default_rng(0)
    for a in [fn(problem, 0) if name == "random" else fn(problem) for name, fn in BASELINES.items()] + \
             [rng.permutation(8)]:
        t = problem_gpu_traffic(problem, a)
        assert np.allclose(bytes_by_tier(problem, t), evaluate(problem, a).bytes_by_tier), (flow, dedup, a)
        ll = link_loads(problem.fabric, t.src_gpu_F, t.dst_gpu_F, t.bytes_F)
        cross = evaluate(problem, a).cross_node_bytes
        assert ll.network_bytes == pytest.approx(cross)
