"""Mt-KaHyPar helpers (hypergraph restriction, fabric domains) and the FLAME-MoE ordering of peers."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.peers import PEERS, missing
from moeplace.peers.mtkahypar import domains, restrict
from moeplace.placement.builder import build_problem
from moeplace.placement.cost import evaluate
from moeplace.placement.presets import load_cluster, load_model
from moeplace.traces.stats import RoutingStats
from tests.peers.problems import small_problem


def test_restrict_renumbers_and_drops_small_edges():
    ptr = np.array([0, 3, 5, 7])
    pins = np.array([0, 2, 3, 1, 2, 0, 1])        # {0,2,3}, {1,2}, {0,1}
    w = np.array([4.0, 6.0, 2.0])
    keep = np.array([True, False, True, True])    # drop item 1; items 0, 2, 3 become 0, 1, 2
    p2, pins2, w2 = restrict(ptr, pins, w, keep)
    assert p2.tolist() == [0, 3] and pins2.tolist() == [0, 1, 2] and w2.tolist() == [4.0]


def test_domains_are_leaves_while_at_most_64():
    p = small_problem()                           # 6 nodes, 2 per leaf
    level, dom = domains(p)
    assert level == "leaf" and dom.tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.slow
def test_flame_ordering_layer_major_kahip_mtkahypar(flame_npz):
    """FLAME-MoE, 64 nodes x 8 GPUs, chain flow with dedup, planned on sequences 0-15, scored on 16-31:
    layer-major (969,108 B/token, exactly) > KaHIP > Mt-KaHyPar in held-out cross-node bytes."""
    for name in ("kahip", "mtkahypar"):
        if missing(name):
            pytest.skip(missing(name))
    with np.load(flame_npz) as z:
        topk, seq = z["topk"], z["sequence"]
    model = load_model(None, name="flame", num_layers=9, dense_layers=[1], num_experts=64, top_k=6, hidden=7168,
                       expert_hidden=1024, num_heads=8, head_dim=128)
    cluster = load_cluster("seed", num_nodes=64)

    def problem(mask):
        return build_problem(model, cluster, RoutingStats.from_paths(topk[mask], 64, keep_paths=None))
    plan, held = problem(seq < 16), problem(seq >= 16)
    cross = {name: evaluate(held, PEERS[name](plan, 0)).cross_node_bytes
             for name in ("layer-major", "kahip", "mtkahypar")}
    assert cross["layer-major"] == 969108.0
    assert cross["layer-major"] > cross["kahip"] > cross["mtkahypar"]
    assert cross["mtkahypar"] < 0.8 * cross["layer-major"]
