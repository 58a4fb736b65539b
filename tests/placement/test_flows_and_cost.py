"""The flow models' transfer lists and the one objective, checked by hand on a two-node cluster.

Tiny model: 2 MoE layers x 4 experts, top-2, 32 B per token vector; items 0-3 are layer 0, 4-7 layer 1.
Cluster: 2 nodes x 4 GPUs under one leaf; tier costs (0, 0.1, 1, 2, 3).
"""

import numpy as np
import pytest

from moeplace.placement.builder import build_problem
from moeplace.placement.cost import evaluate
from moeplace.topologies.base import TierCosts
from moeplace.traces.stats import RoutingStats
from tests.conftest import paths

COSTS = TierCosts((0.0, 0.1, 1.0, 2.0, 3.0))
LAYER_MAJOR = np.arange(8)
SWAPPED = np.array([0, 1, 6, 3, 4, 5, 2, 7])  # layer-1 expert 2 (item 6) on GPU 2, item 2 on GPU 6


def problem(model, cluster, rows, flow="chain", dedup=True):
    stats = RoutingStats.from_paths(paths(*rows), 4)
    return build_problem(model, cluster, stats, flow=flow, dedup=dedup, tier_costs=COSTS)


ONE_TOKEN = ([[0, 1], [2, 3]],)
TWO_TOKENS = ([[0, 1], [2, 3]], [[3, 0], [1, 2]])


def test_chain_transfer_list_for_one_token(tiny_model, tiny_cluster):
    tr = problem(tiny_model, tiny_cluster, ONE_TOKEN).traffic
    edges = {(tr.kinds[k], int(s), tuple(int(x) for x in d if x >= 0)): b
             for k, s, d, b in zip(tr.kind_H, tr.src_H, tr.dst_HK, tr.bytes_H)}
    assert edges == {("combine", 1, (0,)): 32.0, ("combine", 7, (6,)): 32.0, ("forward", 0, (6, 7)): 32.0}


def test_chain_cost_with_node_dedup(tiny_model, tiny_cluster):
    c = evaluate(problem(tiny_model, tiny_cluster, ONE_TOKEN), LAYER_MAJOR)
    # combine 1->0 NVLink, combine 7->6 NVLink, forward 0->{6,7}: one leaf crossing + NVLink fan-out
    assert c.bytes_by_tier == pytest.approx((0, 3 * 32, 32, 0, 0))
    assert c.objective == pytest.approx(32 * (0.1 + 0.1 + 1.1))
    assert c.cross_node_bytes == pytest.approx(32)


def test_chain_cost_without_dedup_crosses_twice(tiny_model, tiny_cluster):
    c = evaluate(problem(tiny_model, tiny_cluster, ONE_TOKEN, dedup=False), LAYER_MAJOR)
    assert c.bytes_by_tier == pytest.approx((0, 2 * 32, 2 * 32, 0, 0))
    assert c.objective == pytest.approx(32 * (0.1 + 0.1 + 2.0))


def test_chain_cost_follows_the_placement(tiny_model, tiny_cluster):
    c = evaluate(problem(tiny_model, tiny_cluster, ONE_TOKEN), SWAPPED)
    # combine 7->6 now crosses; forward reaches 6 over NVLink and 7 over the leaf
    assert c.objective == pytest.approx(32 * (0.1 + 1.0 + 1.1))
    assert c.cross_node_by_kind == pytest.approx({"combine": 32.0, "forward": 32.0})


def test_two_tokens_average_per_token(tiny_model, tiny_cluster):
    c = evaluate(problem(tiny_model, tiny_cluster, TWO_TOKENS), SWAPPED)
    assert c.cross_node_bytes == pytest.approx(64.0)
    assert c.bytes_by_tier[1] == pytest.approx(64.0)


def test_ep_flow_uses_a_uniform_home(tiny_model, tiny_cluster):
    c = evaluate(problem(tiny_model, tiny_cluster, ONE_TOKEN, flow="ep"), LAYER_MAJOR)
    # first target on a node: home on another GPU of it 3/8 (NVLink), same GPU 1/8, other node 1/2 (leaf)
    first = 3 / 8 * 0.1 + 1 / 2 * 1.0
    dispatch = 2 * (first + 0.1)       # two layers; the second expert of each is on the same node
    combine = 4 * first
    assert c.objective == pytest.approx(32 * (dispatch + combine))


def test_same_gpu_targets_cost_nothing(tiny_model):
    from moeplace.placement.presets import load_cluster

    cluster = load_cluster(None, num_nodes=2, gpus_per_node=2, experts_per_gpu=2,
                           topology={"nodes_per_leaf": 2, "leaves_per_pod": 1})
    p = problem(tiny_model, cluster, ONE_TOKEN)
    # GPUs: items 0,1 on GPU 0; 6,7 on GPU 3 (node 1): combine 1->0 free, 7->6 free, forward one crossing
    a = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    c = evaluate(p, a)
    assert c.bytes_by_tier == pytest.approx((64, 0, 32, 0, 0))


def test_flame_layer_major_matches_the_published_reference(flame_npz):
    """Issue 5's reference: layer-major on FLAME-MoE held-out sequences 16-31, 64 nodes x 8, chain + dedup."""
    from moeplace.placement.baselines import layer_major
    from moeplace.placement.presets import load_cluster, load_model

    z = np.load(flame_npz)
    held = z["topk"][z["sequence"] >= 16]
    model = load_model(None, name="flame", num_layers=8, dense_layers=[], num_experts=64, top_k=6)
    cluster = load_cluster(None, num_nodes=64)
    p = build_problem(model, cluster, RoutingStats.from_paths(held, 64, keep_paths=None))
    assert evaluate(p, layer_major(p)).cross_node_bytes == pytest.approx(969_108.0)
