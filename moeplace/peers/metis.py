"""METIS (pymetis) k-way partition of the flow's pairwise graph, k = nodes.

METIS sees a graph (`moeplace.peers.graphs`: the transfer graph, or the dedup graph with target-target
pairs), unit vertex weights and integer edge weights. `part_graph` runs k-way with `ufactor=1` (1.001, its
tightest tolerance), seeded; its blocks can exceed a node's capacity by a few items, which
`moeplace.peers.assign.repair` moves out at the least pairwise cost. Block b becomes node b (identity: METIS
knows nothing of the fabric), and each node's items fill its GPUs in order.
"""

from __future__ import annotations

import numpy as np

from moeplace.peers.assign import place_partition
from moeplace.peers.graphs import GRAPHS, int_weights
from moeplace.peers.registry import register_peer, require
from moeplace.placement.problem import Problem


def metis_partition(problem: Problem, seed: int, graph: str) -> np.ndarray:
    import pymetis

    g = GRAPHS[graph](problem.traffic)
    if g.idx.size == 0:
        part = np.arange(problem.num_items) % problem.num_nodes
    elif problem.num_nodes == 1:
        part = np.zeros(problem.num_items, dtype=np.int64)
    else:
        res = pymetis.part_graph(problem.num_nodes, adjacency=pymetis.CSRAdjacency(g.ptr, g.idx),
                                 eweights=int_weights(g.w), options=pymetis.Options(seed=seed, ufactor=1))
        part = np.asarray(res.vertex_part, dtype=np.int64)
    return place_partition(problem, part, g)


@register_peer("metis", "METIS k-way (pymetis, ufactor 1.001) on the transfer graph, k = nodes, repaired to "
               "exact capacities", requires=("pymetis",))
def metis_transfer(problem: Problem, seed: int = 0) -> np.ndarray:
    require("metis")
    return metis_partition(problem, seed, "transfer")


@register_peer("metis-dedup", "METIS k-way on the dedup graph (target pairs at half weight), repaired",
               requires=("pymetis",))
def metis_dedup(problem: Problem, seed: int = 0) -> np.ndarray:
    require("metis-dedup")
    return metis_partition(problem, seed, "dedup")
