"""`moeplace evaluate` metrics by hand (same tiny setup as test_flows_and_cost)."""

import numpy as np
import pytest

from moeplace.placement.builder import build_problem
from moeplace.placement.metrics import placement_metrics
from moeplace.topologies.base import TierCosts
from moeplace.traces.stats import RoutingStats
from tests.conftest import paths

TWO_TOKENS = paths([[0, 1], [2, 3]], [[3, 0], [1, 2]])
SWAPPED = np.array([0, 1, 6, 3, 4, 5, 2, 7])


def metrics(model, cluster, assignment, keep_paths=None):
    stats = RoutingStats.from_paths(TWO_TOKENS, 4, keep_paths=keep_paths)
    if keep_paths == 0:
        stats = RoutingStats(load_LE=stats.load_LE, coact_LEE=stats.coact_LEE, trans_LEE=stats.trans_LEE,
                             trans_primary_LEE=stats.trans_primary_LEE, num_tokens=2, top_k=2,
                             layer_numbers=stats.layer_numbers, paths_TLK=None)
    p = build_problem(model, cluster, stats, tier_costs=TierCosts((0, 0.1, 1, 2, 3)))
    return placement_metrics(p, assignment, stats)


def test_layer_major_every_pair_crosses(tiny_model, tiny_cluster):
    m = metrics(tiny_model, tiny_cluster, np.arange(8))
    assert m.pair_cross_node_share == 1.0 and m.pair_cross_gpu_share == 1.0
    assert m.coact_cross_node_share == 0.0 and m.nodes_touched == 1.0


def test_swapped_by_hand(tiny_model, tiny_cluster):
    m = metrics(tiny_model, tiny_cluster, SWAPPED)
    assert m.pair_cross_node_share == pytest.approx(4 / 8)
    assert m.pair_cross_gpu_share == 1.0
    assert m.coact_cross_node_share == pytest.approx(2 / 4)
    assert m.nodes_touched == pytest.approx(1.5)
    assert m.cross_node_bytes_per_token == pytest.approx(64.0)
    assert m.bytes_per_token_by_tier["nvlink"] == pytest.approx(64.0)


def test_top2_counts_without_paths_give_the_same_coactivation(tiny_model, tiny_cluster):
    m = metrics(tiny_model, tiny_cluster, SWAPPED, keep_paths=0)
    assert m.coact_cross_node_share == pytest.approx(2 / 4)
    assert m.nodes_touched == pytest.approx(1.5)
    assert m.pair_cross_node_share == pytest.approx(4 / 8)
