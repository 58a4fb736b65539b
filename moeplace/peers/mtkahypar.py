"""Mt-KaHyPar on the flow's hyperedges: connectivity (km1) partition into nodes, and a Steiner-tree mapping.

The hypergraph is `moeplace.peers.graphs.hyperedge_pins` ({source} ∪ targets, weight = bytes): with
node-level dedup, km1 of a node partition is the cross-node crossings the objective counts.

`mtkahypar` (km1): preset QUALITY, k = nodes, every block's maximum weight set to the node's capacity
        (epsilon 0: perfect balance), seeded; block b is node b (identity).
`mtkahypar-steiner`: the Steiner-tree objective onto a target graph whose vertices are fabric domains and
        whose edge weights are the mean tier cost between them (x 100, integers). The domains are the leaves
        (rail groups), or the pods (Dragonfly+ groups) where there are more than 64 leaves, since Mt-KaHyPar
        maps hypergraphs onto at most 64 target vertices (and nodes of one leaf are interchangeable to the
        objective: mapping onto them adds nothing but time); each domain's block weight is its slots.
        Inside a domain of several nodes, its items are km1-partitioned into its nodes (QUALITY, perfect
        balance). The Steiner tree of a hyperedge is a proxy: it charges the cheapest tree over the blocks
        a send touches, where the objective charges a star from the source (with dedup per node).
Both end with `moeplace.peers.assign` (repair, needed only for per-layer limits; fill GPUs in order).

Mt-KaHyPar is initialised once per process with one thread (`THREADS`), so that a seed fixes the result;
the benchmark runs each peer in its own process.
"""

from __future__ import annotations

import numpy as np

from moeplace.peers.assign import place_partition
from moeplace.peers.graphs import dedup_graph, hyperedge_pins, int_weights
from moeplace.peers.registry import register_peer, require
from moeplace.placement.problem import Problem

THREADS = 1
MAX_TARGET = 64
_INITIALIZER = None


def _mt():
    import mtkahypar

    global _INITIALIZER
    if _INITIALIZER is None:
        _INITIALIZER = mtkahypar.initialize(THREADS)
    return mtkahypar, _INITIALIZER


def _hypergraph(ini, ctx, num_items: int, ptr: np.ndarray, pins: np.ndarray, w: np.ndarray):
    edges = [x.tolist() for x in np.split(pins, ptr[1:-1])] if ptr.size > 1 else []
    return ini.create_hypergraph(ctx, num_items, len(edges), edges, [1] * num_items, int_weights(w).tolist())


def km1_partition(num_items: int, ptr: np.ndarray, pins: np.ndarray, w: np.ndarray, block_cap: list[int],
                  seed: int) -> np.ndarray:
    """int [items]: block of every item, km1-minimal under per-block capacities (items have weight 1)."""
    k = len(block_cap)
    if k == 1 or ptr.size <= 1:
        return np.repeat(np.arange(k), block_cap)[:num_items] if k > 1 else np.zeros(num_items, dtype=np.int64)
    mt, ini = _mt()
    ctx = ini.context_from_preset(mt.PresetType.QUALITY)
    ctx.set_partitioning_parameters(k, 0.0, mt.Objective.KM1)
    ctx.set_individual_target_block_weights(list(block_cap))
    ctx.logging = False
    mt.set_seed(int(seed))
    part = _hypergraph(ini, ctx, num_items, ptr, pins, w).partition(ctx).get_partition()
    return np.asarray(part, dtype=np.int64)


def steiner_mapping(num_items: int, ptr: np.ndarray, pins: np.ndarray, w: np.ndarray, block_cap: list[int],
                    dist_DD: np.ndarray, seed: int) -> np.ndarray:
    """int [items]: target vertex of every item, minimising the Steiner trees of the hyperedges on dist_DD."""
    k = len(block_cap)
    mt, ini = _mt()
    ctx = ini.context_from_preset(mt.PresetType.QUALITY)
    ctx.set_mapping_parameters(k, 0.0)
    ctx.set_individual_target_block_weights(list(block_cap))
    ctx.logging = False
    mt.set_seed(int(seed))
    iu = np.triu_indices(k, 1)
    edges = list(zip(iu[0].tolist(), iu[1].tolist()))
    weights = np.maximum(1, np.rint(dist_DD[iu] * 100)).astype(np.int64).tolist()
    target = ini.create_target_graph(ctx, k, len(edges), edges, weights)
    part = _hypergraph(ini, ctx, num_items, ptr, pins, w).map_onto_graph(target, ctx).get_partition()
    return np.asarray(part, dtype=np.int64)


def restrict(ptr: np.ndarray, pins: np.ndarray, w: np.ndarray, keep_I: np.ndarray) -> tuple[np.ndarray, ...]:
    """The hyperedges cut down to items with keep_I, renumbered 0.., dropping those left with < 2 pins."""
    local = np.cumsum(keep_I) - 1
    edge = np.repeat(np.arange(ptr.size - 1), np.diff(ptr))
    ok = keep_I[pins]
    edge, p = edge[ok], local[pins[ok]]
    count = np.bincount(edge, minlength=ptr.size - 1)
    good = count >= 2
    sel = good[edge]
    return np.concatenate([[0], np.cumsum(count[good])]).astype(np.int64), p[sel], w[good]


def domains(problem: Problem) -> tuple[str, np.ndarray]:
    """(level name, domain int [nodes]) of the lowest level with at most MAX_TARGET domains."""
    fab = problem.fabric
    for name, dom in (("leaf", fab.node_leaf_N), ("pod", fab.node_pod_N)):
        _, dom = np.unique(dom, return_inverse=True)
        if dom.max() + 1 <= MAX_TARGET:
            return name, dom.astype(np.int64)
    raise ValueError(f"Mt-KaHyPar maps onto at most {MAX_TARGET} target vertices; this fabric has "
                     f"{int(np.unique(fab.node_pod_N).size)} pods")


@register_peer("mtkahypar", "Mt-KaHyPar km1 on the flow's hyperedges, QUALITY, perfect balance, k = nodes",
               requires=("mtkahypar",))
def mtkahypar_km1(problem: Problem, seed: int = 0) -> np.ndarray:
    require("mtkahypar")
    ptr, pins, w = hyperedge_pins(problem.traffic)
    part = km1_partition(problem.num_items, ptr, pins, w, [problem.node_capacity] * problem.num_nodes, seed)
    return place_partition(problem, part, dedup_graph(problem.traffic))


@register_peer("mtkahypar-steiner", "Mt-KaHyPar Steiner-tree mapping onto the fabric's domains (<= 64: nodes, "
               "leaves or pods) by tier cost, then km1 into each domain's nodes", requires=("mtkahypar",))
def mtkahypar_steiner(problem: Problem, seed: int = 0) -> np.ndarray:
    require("mtkahypar-steiner")
    ptr, pins, w = hyperedge_pins(problem.traffic)
    _, dom_N = domains(problem)
    D = int(dom_N.max()) + 1
    onehot = np.zeros((problem.num_nodes, D))
    onehot[np.arange(problem.num_nodes), dom_N] = 1.0
    cost_NN = problem.tier_costs.array[problem.fabric.node_tier_NN]
    sizes = onehot.sum(axis=0)
    dist = (onehot.T @ cost_NN @ onehot) / np.outer(sizes, sizes)
    caps = (sizes * problem.node_capacity).astype(np.int64).tolist()
    dom_I = steiner_mapping(problem.num_items, ptr, pins, w, caps, dist, seed) if D > 1 else \
        np.zeros(problem.num_items, dtype=np.int64)
    node_I = np.empty(problem.num_items, dtype=np.int64)
    for d in range(D):
        nodes = np.flatnonzero(dom_N == d)
        mine = dom_I == d
        sub = restrict(ptr, pins, w, mine)
        node_I[mine] = nodes[km1_partition(int(mine.sum()), *sub, [problem.node_capacity] * nodes.size, seed)]
    return place_partition(problem, node_I, dedup_graph(problem.traffic))
