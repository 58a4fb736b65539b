"""KaHIP (`kahip.kaffpa`) k-way partition of the flow's pairwise graph, k = nodes.

KaHIP sees the same graphs as METIS (`moeplace.peers.graphs`), unit vertex weights, integer edge weights,
and runs in mode STRONG with imbalance 0 (blocks of at most ceil(items / k)), seeded. At imbalance 0 KaHIP
switches on its perfectly balanced (negative-cycle) refinement, whose time grows with the edge weights'
magnitude, so the weights are scaled to at most `MAX_WEIGHT` (1000). Its blocks then fit
the nodes; `moeplace.peers.assign.repair` acts only where a per-layer limit is broken. Block b becomes node
b (identity), and each node's items fill its GPUs in order.
"""

from __future__ import annotations

import numpy as np

from moeplace.peers.assign import place_partition
from moeplace.peers.graphs import GRAPHS, int_weights
from moeplace.peers.registry import register_peer, require
from moeplace.placement.problem import Problem

MAX_WEIGHT = 1000


def kahip_partition(problem: Problem, seed: int, graph: str) -> np.ndarray:
    import kahip

    g = GRAPHS[graph](problem.traffic)
    if g.idx.size == 0:
        part = np.arange(problem.num_items) % problem.num_nodes
    elif problem.num_nodes == 1:
        part = np.zeros(problem.num_items, dtype=np.int64)
    else:
        _, blocks = kahip.kaffpa(np.ones(problem.num_items, dtype=np.int32), g.ptr.astype(np.int32),
                                 int_weights(g.w, max_weight=MAX_WEIGHT).astype(np.int32), g.idx.astype(np.int32), problem.num_nodes,
                                 0.0, True, int(seed), kahip.STRONG)
        part = np.asarray(blocks, dtype=np.int64)
    return place_partition(problem, part, g)


@register_peer("kahip", "KaHIP kaffpa STRONG, imbalance 0, on the transfer graph (pairwise weights), k = nodes",
               requires=("kahip",))
def kahip_transfer(problem: Problem, seed: int = 0) -> np.ndarray:
    require("kahip")
    return kahip_partition(problem, seed, "transfer")


@register_peer("kahip-dedup", "KaHIP kaffpa STRONG, imbalance 0, on the dedup graph (target pairs at half weight)",
               requires=("kahip",))
def kahip_dedup(problem: Problem, seed: int = 0) -> np.ndarray:
    require("kahip-dedup")
    return kahip_partition(problem, seed, "dedup")
