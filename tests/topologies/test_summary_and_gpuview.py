"""`topology show` facts (bisection, tapers, tiers) and the GPU-level view of rail-optimized fabrics."""

from __future__ import annotations

import numpy as np

from moeplace.topologies.base import TIER_LEAF, TIER_NVLINK, TIER_POD, TIER_SAME_GPU
from moeplace.topologies.gpuview import gpu_paths, gpu_route
from moeplace.topologies.summary import bisection_gbps, fabric_summary
from tests.topologies.helpers import dfp, ft


def test_bisection_of_hand_drawn_trees():
    # 3 leaves of 2 nodes, 2 spines, every link 200 Gb/s: the middle cut can carry all 3 x 200 Gb/s
    assert bisection_gbps(ft(6, gpus=1, nics=1, radix=4, rail_optimized=False)) == 600.0
    # 3:1 leaves (3 down, 1 up): two leaves of 3 nodes share one 200 Gb/s uplink each
    f = ft(6, gpus=1, nics=1, radix=4, rail_optimized=False, oversubscription=[3.0])
    assert f.params["shape"]["leaf_down"] == 3 and bisection_gbps(f) == 200.0


def test_seed_summary():
    s = fabric_summary(ft())
    assert [(r["role"], r["switches"], r["ports_used"]) for r in s["levels"]] == [
        ("leaf", 96, 40), ("spine", 120, 36), ("core", 80, 30)]
    assert s["levels"][0]["max_down_up"] == 1.0 and s["diameter_hops"] == 6
    assert s["bisection_gbps"] == s["full_bisection_gbps"] == 232 * 8 * 200 / 2
    assert [(r["tier"], r["node_pairs"], r["max_hops"]) for r in s["tiers"]] == [
        ("leaf", 4312, 2), ("pod", 4480, 4), ("core", 44800, 6)]
    d = fabric_summary(dfp(), with_bisection=False)
    assert [r["tier"] for r in d["tiers"]] == ["leaf", "group", "global"] and d["diameter_hops"] == 5


def test_gpu_view_on_rails():
    f = ft(40, gpus=8, nics=8)                                    # 2 units of 20, rail leaves
    a = np.array([3, 3, 3, 3, 3])
    # same GPU, same node, rail match, rail mismatch, other unit
    b = np.array([3, 2, 8 + 3, 8 + 5, 8 * 25 + 5])
    pxn = gpu_paths(f, a, b, pxn=True)
    assert pxn.tier.tolist() == [TIER_SAME_GPU, TIER_NVLINK, TIER_LEAF, TIER_LEAF, TIER_POD]
    assert pxn.nvlink_hops.tolist() == [0, 1, 0, 1, 1] and pxn.network_hops.tolist() == [0, 0, 2, 2, 4]
    assert (pxn.tier == f.gpu_tier(a, b)).all()
    raw = gpu_paths(f, a, b, pxn=False)
    assert raw.tier.tolist() == [TIER_SAME_GPU, TIER_NVLINK, TIER_LEAF, TIER_POD, TIER_POD]
    assert raw.network_hops.tolist() == [0, 0, 2, 4, 4] and raw.src_nic.tolist() == [-1, -1, 3, 3, 3]


def test_route_in_words():
    f = ft(40, gpus=8, nics=8)
    r = gpu_route(f, 3, 8 + 5)
    assert r["steps"] == ["node001:3", "NVLink (PXN)", "node001:5", "NIC 5", "leaf-su01-r5", "NIC 5", "node002:5"]
    assert (r["tier"], r["equal_cost_paths"], r["network_hops"]) == ("leaf", 1, 2)
    r = gpu_route(f, 3, 8 + 5, pxn=False)
    # 16 leaves x 20 uplinks fit 10 spines with 2 cables from every leaf: 10 spines x 2 up x 2 down
    assert r["steps"][2:5] == ["leaf-su01-r3", "spine01", "leaf-su01-r5"] and r["equal_cost_paths"] == 40
    assert r["network_latency_us"] == round(4 * 0.025 + 3 * 0.13, 4)
