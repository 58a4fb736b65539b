"""The graphs and hypergraph the partitioners see, checked by hand."""

from __future__ import annotations

import numpy as np

from moeplace.peers.graphs import hyperedge_pins, int_weights, transfer_graph
from moeplace.placement.traffic import HOME, PAD, Traffic


def traffic():
    # 0 -> {2, 3} (4 B), HOME -> {1, 2} (6 B), 1 -> {0} (2 B), HOME -> {3} (5 B: one pin, dropped)
    return Traffic(src_H=np.array([0, HOME, 1, HOME]), dst_HK=np.array([[2, 3], [1, 2], [0, PAD], [3, PAD]]),
                   bytes_H=np.array([4.0, 6.0, 2.0, 5.0]), kind_H=np.zeros(4, dtype=np.int8), kinds=("x",),
                   num_items=4)


def test_hyperedge_pins():
    ptr, pins, w = hyperedge_pins(traffic())
    edges = [pins[ptr[e]:ptr[e + 1]].tolist() for e in range(ptr.size - 1)]
    assert edges == [[0, 2, 3], [1, 2], [0, 1]]
    assert w.tolist() == [4.0, 6.0, 2.0]


def test_transfer_graph_weights():
    g = transfer_graph(traffic())
    W = np.zeros((4, 4))
    for i in range(4):
        nbr, w = g.neighbours(i)
        W[i, nbr] = w
    expected = np.zeros((4, 4))
    expected[0, 2] = expected[0, 3] = 4.0     # source-target pairs
    expected[1, 2] = 6.0                      # HOME clique over 2 targets: 6 / (2 - 1)
    expected[0, 1] = 2.0
    expected = expected + expected.T
    assert np.array_equal(W, expected)


def test_int_weights():
    w = np.array([1.0, 2.0, 1e-9])
    assert int_weights(w, total=300).tolist() == [100, 200, 1]
    assert int_weights(w, max_weight=10).tolist() == [5, 10, 1]
