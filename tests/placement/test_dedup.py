"""The node-dedup rule, written once (`dedup_columns`), on a hand-made hyperedge."""

from __future__ import annotations

import numpy as np

from moeplace.placement.cost import dedup_columns

HOME, PAD = -1, -1


def classes(src_gpu_H, dst_gpu_HK, relay=True):
    cols = {c.j: c for c in dedup_columns(np.array(src_gpu_H), np.array(dst_gpu_HK), 4, relay=relay)}
    names = ("same_gpu", "nvlink", "relayed", "network", "home")
    out = []
    for j in range(len(dst_gpu_HK[0])):
        c = cols.get(j)
        hit = [n for n in names if c is not None and getattr(c, n)[0]]
        out.append((hit[0] if hit else None, None if c is None or c.relay_gpu is None else int(c.relay_gpu[0])))
    return out


def test_one_item_sourced_edge():
    # source GPU 0 (node 0); 4 GPUs per node: GPU 0 again, GPU 1 (node 0), GPU 6 (node 1), GPU 5 (node 1),
    # GPU 6 again, padding
    got = classes([0], [[0, 1, 6, 5, 6, PAD]])
    assert got == [("same_gpu", -1), ("nvlink", -1), ("network", -1), ("relayed", 6), (None, -1), (None, None)]


def test_without_dedup_of_the_node_every_remote_first_target_would_cross():
    got = classes([0], [[9, 8, 4]])          # nodes 2, 2, 1
    assert [g[0] for g in got] == ["network", "relayed", "network"]
    assert got[1][1] == 9


def test_home_sourced_edge():
    got = classes([HOME], [[2, 3, 2, 7]])     # nodes 0, 0, 0, 1
    assert got == [("home", -1), ("relayed", 2), (None, -1), ("home", -1)]


def test_columns_without_targets_are_skipped_and_relay_is_optional():
    cols = list(dedup_columns(np.array([0, 1]), np.array([[4, PAD], [5, PAD]]), 4))
    assert [c.j for c in cols] == [0]
    assert cols[0].relay_gpu is None and cols[0].network.tolist() == [True, True]


def test_two_target_fast_path_is_the_generic_kernel_bit_for_bit():
    """`edge_costs` on hyperedges of two targets (the chain flow) skips `dedup_codes`; same costs exactly."""
    from moeplace.placement import cost as C
    from tests.solvers.exact_cases import instance

    p = instance(3, 8, 6, 4, nodes_per_leaf=2, seed=1)
    rng = np.random.default_rng(0)
    H = 4000
    table = np.concatenate([p.tier_costs.array, [0.0, 0.0]])
    for gpus in (p.num_gpus, 8, 3):
        s = rng.integers(0, gpus, H)
        s[rng.random(H) < 0.2] = HOME
        d = rng.integers(0, gpus, (H, 2))
        d[rng.random((H, 2)) < 0.2] = PAD
        same = rng.random(H) < 0.1
        d[same, 1] = d[same, 0]
        code = C.target_tiers(p, s, d)
        want = table[code]
        home = code == C.HOME_REMOTE
        want[home] = (C.home_tier_dist(p) @ p.tier_costs.array)[d[home] // p.gpus_per_node]
        assert np.array_equal(C.edge_costs(p, s, d), want.sum(axis=1))


def test_incidence_lists_each_items_hyperedges_once_in_order():
    import dataclasses

    from tests.solvers.exact_cases import instance

    tr = instance(3, 8, 6, 4, seed=2).traffic
    dst = tr.dst_HK.copy()
    dst[::7, -1] = tr.src_H[::7]          # an item twice in one hyperedge (as source and target) counts once
    tr = dataclasses.replace(tr, dst_HK=dst)
    ptr, inc = tr.incidence()
    for i in range(tr.num_items):
        want = sorted({h for h in range(tr.num_edges) if tr.src_H[h] == i or i in tr.dst_HK[h]})
        assert inc[ptr[i]:ptr[i + 1]].tolist() == want
    assert tr.incidence()[1] is inc and not inc.flags.writeable
