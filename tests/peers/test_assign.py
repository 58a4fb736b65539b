"""Repair to exact capacities and GPU filling, checked by hand on tiny cases."""

from __future__ import annotations

import numpy as np

from moeplace.peers.assign import fill_gpus, repair
from moeplace.peers.simple import empty_graph
from moeplace.solvers.affinity import Affinity
from tests.peers.problems import small_problem


def graph(n, edges):
    """Symmetric CSR from {(a, b): w}."""
    W = np.zeros((n, n))
    for (a, b), w in edges.items():
        W[a, b] = W[b, a] = w
    r, c = np.nonzero(W)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(ptr, r + 1, 1)
    return Affinity(ptr=np.cumsum(ptr), idx=c.astype(np.int64), w=W[r, c])


def test_repair_moves_the_least_attached_item_to_its_friends():
    p = small_problem()                      # 24 items, 6 nodes x 4 GPUs: node capacity 4
    part = np.repeat(np.arange(6), 4)
    part[4] = 0                              # node 0 holds 5, node 1 holds 3
    g = graph(24, {(0, 1): 5.0, (1, 2): 5.0, (2, 3): 5.0, (4, 5): 9.0, (4, 0): 1.0})
    out = repair(p, part, g)
    assert np.bincount(out, minlength=6).tolist() == [4] * 6
    assert out[4] == 1                       # item 4 (weight 9 to node 1, 1 to node 0) goes back
    assert (out[np.arange(24) != 4] == part[np.arange(24) != 4]).all()


def test_repair_without_neighbours_uses_the_emptiest_node():
    p = small_problem()
    part = np.zeros(24, dtype=np.int64)      # everything on node 0
    out = repair(p, part, empty_graph(24))
    assert np.bincount(out, minlength=6).tolist() == [4] * 6


def test_repair_keeps_layer_limits():
    p = small_problem("ep", 2, balance=True)  # 3 nodes x 4 GPUs x 2, at most 1 of a layer per GPU: 4 per node
    part = np.zeros(24, dtype=np.int64)
    part[8:16] = 1
    part[16:] = 2                            # node 0 holds all 8 experts of layer 0: 4 too many of one layer
    out = repair(p, part, empty_graph(24))
    per = np.zeros((3, 3), dtype=int)
    np.add.at(per, (out, p.item_layer_I), 1)
    assert per.max() <= 4 and np.bincount(out).max() <= 8


def test_fill_gpus_in_order_and_dealt_with_balance():
    p = small_problem("chain", 2)            # 3 nodes x 4 GPUs x 2
    node = np.repeat(np.arange(3), 8)
    assert fill_gpus(p, node).tolist() == [g for g in range(12) for _ in range(2)]
    pb = small_problem("chain", 2, balance=True)
    node = np.arange(24) % 3
    gpu = fill_gpus(pb, node)
    # node 0 holds items 0, 3, 6 (layer 0), 9, 12, 15 (layer 1), 18, 21 (layer 2): dealt over GPUs 0..3
    assert gpu[[0, 3, 6, 9, 12, 15, 18, 21]].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
