"""From a node-level partition to a feasible GPU assignment: repair to exact capacities, then fill GPUs.

Partitioners give each item a block; block b is node b (identity: a plain partitioner knows nothing of
the fabric, so moeplace does not invent a mapping for it; the Steiner-tree peer maps blocks itself).

Step 1 `repair`: graph partitioners keep balance only within a tolerance (METIS's smallest is 0.1%, which
        rounds to one item on a node of eight; KaHIP and Mt-KaHyPar reach it exactly in practice), so every
        block is brought to the node's capacity (GPUs x experts per GPU) and, with balance per layer, to
        at most `layer_cap_per_gpu x GPUs` items of a layer. While a block is over, the move of one of its
        items to a block with room that loses the least pairwise weight (connection to the destination
        minus connection to the source block, on the same graph the partitioner saw) is made. A layer
        limit that no move can fix is fixed by swapping with an item of another layer.
Step 2 `fill_gpus`: each node's items, in item order, fill its GPUs in order (experts_per_gpu per GPU);
        with balance per layer they are dealt round-robin over the node's GPUs in (layer, item) order, which
        keeps at most ceil(count / GPUs) <= layer_cap_per_gpu experts of a layer on one GPU.
"""

from __future__ import annotations

import numpy as np

from moeplace.placement.problem import Problem
from moeplace.solvers.affinity import Affinity


def _limits(problem: Problem) -> tuple[int, int]:
    """(items per node, items of one layer per node)."""
    per_layer = problem.layer_cap_per_gpu * problem.gpus_per_node if problem.balance_per_layer else problem.node_capacity
    return problem.node_capacity, per_layer


def _conn(graph: Affinity, part: np.ndarray, i: int) -> dict[int, float]:
    nbr, w = graph.neighbours(i)
    out: dict[int, float] = {}
    for b, x in zip(part[nbr].tolist(), w.tolist()):
        out[b] = out.get(b, 0.0) + x
    return out


def repair(problem: Problem, part_I: np.ndarray, graph: Affinity) -> np.ndarray:
    """int [items]: `part_I` (node per item) with every node within its capacities, moving few items."""
    part = np.asarray(part_I, dtype=np.int64).copy()
    N, L = problem.num_nodes, problem.model.num_moe_layers
    assert part.min() >= 0 and part.max() < N, (part.min(), part.max())
    cap, lcap = _limits(problem)
    layer = problem.item_layer_I
    size = np.bincount(part, minlength=N)
    per = np.zeros((N, L), dtype=np.int64)
    np.add.at(per, (part, layer), 1)

    def move(i: int, d: int) -> None:
        b = part[i]
        size[b] -= 1
        per[b, layer[i]] -= 1
        part[i] = d
        size[d] += 1
        per[d, layer[i]] += 1

    def best_move(cands: np.ndarray, respect_layers: bool) -> tuple[int, int] | None:
        best = None
        for i in cands.tolist():
            room = (size < cap) & ((per[:, layer[i]] < lcap) if respect_layers else True)
            room[part[i]] = False
            if not room.any():
                continue
            conn = _conn(graph, part, i)
            home = conn.get(int(part[i]), 0.0)
            fallback = int(np.argmax(np.where(room, cap - size, -1)))
            options = [(conn.get(fallback, 0.0), fallback)] + [(x, d) for d, x in conn.items() if room[d]]
            gain, d = max(options, key=lambda t: (t[0], -t[1]))
            key = (gain - home, -i, -d)
            if best is None or key > best[0]:
                best = (key, i, d)
        return None if best is None else (best[1], best[2])

    for b in range(N):
        while size[b] > cap:
            cands = np.flatnonzero(part == b)
            m = best_move(cands, True) or best_move(cands, False)
            assert m is not None, "no node has room: capacities were checked by Problem"
            move(*m)
    if problem.balance_per_layer:
        for b, l in np.argwhere(per > lcap).tolist():
            while per[b, l] > lcap:
                cands = np.flatnonzero((part == b) & (layer == l))
                m = best_move(cands, True)
                if m is not None:
                    move(*m)
                    continue
                i = int(cands[0])
                d, j = _swap_partner(part, layer, per, b, l, lcap)
                move(i, d)
                move(j, b)
    assert (size <= cap).all() and (per <= lcap).all()
    return part


def _swap_partner(part: np.ndarray, layer: np.ndarray, per: np.ndarray, b: int, l: int,
                  lcap: int) -> tuple[int, int]:
    """(node d, item j on d of another layer) such that swapping j with a layer-l item of b keeps limits."""
    for d in np.flatnonzero(per[:, l] < lcap).tolist():
        for j in np.flatnonzero((part == d) & (layer != l)).tolist():
            if per[b, layer[j]] < lcap:
                return d, j
    raise AssertionError(f"no swap repairs layer {l} on node {b}")


def fill_gpus(problem: Problem, node_I: np.ndarray) -> np.ndarray:
    """int [items]: the GPU of every item, each node's items filling its GPUs (see module docstring)."""
    node_I = np.asarray(node_I, dtype=np.int64)
    G, c = problem.gpus_per_node, problem.experts_per_gpu
    layer = problem.item_layer_I
    if problem.balance_per_layer:
        order = np.lexsort((np.arange(node_I.size), layer, node_I))
    else:
        order = np.lexsort((np.arange(node_I.size), node_I))
    n_sorted = node_I[order]
    start = np.searchsorted(n_sorted, n_sorted, side="left")
    rank = np.arange(order.size) - start
    local = rank % G if problem.balance_per_layer else rank // c
    gpu = np.empty_like(node_I)
    gpu[order] = n_sorted * G + local
    return gpu


def place_partition(problem: Problem, part_I: np.ndarray, graph: Affinity) -> np.ndarray:
    """Repair a node partition (block b = node b) and fill GPUs: a feasible `item_gpu_I`."""
    return fill_gpus(problem, repair(problem, part_I, graph))
