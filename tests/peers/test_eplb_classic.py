"""EPLB-style balancing and the classic layout, checked by hand."""

from __future__ import annotations

import numpy as np

from moeplace.peers.classic import classic_cluster, classic_layout
from moeplace.peers.eplb import balanced_packing, eplb_style, token_load_I
from moeplace.peers.simple import layer_major
from moeplace.placement.builder import build_problem
from moeplace.placement.presets import load_cluster, load_model
from moeplace.traces.synth import synthesize
from tests.peers.problems import small_problem


def test_balanced_packing_largest_first_to_lightest_with_room():
    # 9 -> A; 7 -> B; 5 -> B (7 < 9); 4 -> A (9 < 12); 2 -> B (12 < 13, B now full); 1 -> A
    pack = balanced_packing(np.array([5.0, 9.0, 2.0, 7.0, 4.0, 1.0]), np.array([3, 3]))
    assert pack.tolist() == [1, 0, 1, 1, 0, 0]


def test_token_load_matches_statistics():
    for flow in ("chain", "ep"):
        p = small_problem(flow)
        stats = synthesize(3, 8, 2, num_tokens=512, affinity=0.6, seed=0)
        expected = stats.load_LE.ravel() / stats.num_tokens * p.model.token_bytes
        assert np.allclose(token_load_I(p), expected)


def test_eplb_keeps_each_layers_nodes_and_balances_them():
    p = small_problem("chain", 1, affinity=0.3)
    base, out = layer_major(p), eplb_style(p)
    load = token_load_I(p)
    G = p.gpus_per_node
    for l in range(3):
        items = np.flatnonzero(p.item_layer_I == l)
        assert set(out[items] // G) == set(base[items] // G)
        node_load = lambda a: np.bincount(a[items] // G, weights=load[items])[np.unique(a[items] // G)]
        assert node_load(out).max() <= node_load(base).max() + 1e-9


def test_classic_stage_layout():
    """32 experts x 58 layers at 8 per GPU: stages of 8 layers on 32 GPUs, expert e on the stage's GPU e."""
    model = load_model("seed")
    cluster = classic_cluster(model, load_cluster("seed"), 8)
    assert (cluster.num_nodes, cluster.experts_per_gpu) == (32, 8)   # 8 stages x 32 GPUs = 256 GPUs
    stats = synthesize(58, 32, 2, num_tokens=64, seed=0)
    p = build_problem(model, cluster, stats, balance_per_layer=True)
    a = classic_layout(p)
    assert a[0 * 32 + 5] == a[7 * 32 + 5] == 5                      # layers 0 and 7: stage 0
    assert a[8 * 32 + 5] == 32 + 5 and a[57 * 32 + 31] == 7 * 32 + 31
    assert classic_cluster(model, load_cluster("seed"), 4).num_nodes == 60   # 15 stages x 32 GPUs


def test_classic_wraps_when_stages_do_not_fit():
    model = load_model("seed")
    cluster = load_cluster("seed", num_nodes=29, experts_per_gpu=8)    # 232 GPUs x 8 = 1,856 slots exactly
    p = build_problem(model, cluster, synthesize(58, 32, 2, num_tokens=64, seed=0), balance_per_layer=True)
    a = classic_layout(p)
    assert np.bincount(a, minlength=232).tolist() == [8] * 232
    assert a[32] == 32 and a[7 * 32 + 8] == (7 * 32 + 8) % 232
