"""An EPLB-style hierarchical balancer, written from the published policy of deepseek-ai/EPLB (eplb.py).

EPLB's hierarchical policy, per MoE layer: Step 1 packs expert groups to nodes so that every node gets
the same number of groups and the node loads are balanced (largest load first, each to the lightest node
that still has room); Step 2 replicates the hottest experts within each node into the spare slots (argmax
of load / copies); Step 3 packs the node's physical experts to its GPUs the same largest-first way.

Here, per layer, on the GPUs that the classic layout gives the layer (layer-major contiguous when a GPU
holds one expert): Step 1 packs the layer's experts to the nodes it occupies, each node taking as many as
it has slots for the layer; Step 2 is empty, since a Problem has no spare slots (replication is the solver's
option, issue 5 part 5); Step 3 packs each node's experts to the layer's GPUs on it. Groups have one
expert (ModelSpec has no expert groups). The load is the tokens through each expert, read off the flow's
hyperedges (`token_load_I`).

What it changes with one expert per GPU and no spare GPUs: only which of the layer's nodes each expert sits
on, so that the layer's tokens spread evenly over those nodes' NICs. It cannot change GPU compute balance
(each GPU's load is its one expert's), it never moves an expert to another layer's nodes, and it ignores
co-activation, layer-to-layer affinity and the fabric: bytes across nodes change only by accident.
"""

from __future__ import annotations

import numpy as np

from moeplace.peers.classic import classic_layout
from moeplace.peers.registry import register_peer
from moeplace.placement.flows import get_flow
from moeplace.placement.flows.base import item_bytes
from moeplace.placement.problem import Problem


def balanced_packing(weight_n: np.ndarray, capacity_m: np.ndarray) -> np.ndarray:
    """int [n]: the pack of every object; heaviest first, each to the lightest pack with room left."""
    load = np.zeros(capacity_m.size)
    count = np.zeros(capacity_m.size, dtype=np.int64)
    pack = np.empty(weight_n.size, dtype=np.int64)
    for o in np.argsort(-weight_n, kind="stable").tolist():
        p = int(np.argmin(np.where(count < capacity_m, load, np.inf)))
        pack[o] = p
        load[p] += weight_n[o]
        count[p] += 1
    return pack


def token_load_I(problem: Problem) -> np.ndarray:
    """float [items]: tokens through each expert, in bytes per token (token bytes x fraction of tokens), as
    the flow model counts them (`FlowModel.peer_load`); for a flow that says nothing, the bytes of every
    hyperedge an item takes part in (a proxy)."""
    flow = get_flow(problem.flow)
    if flow.peer_load is not None:
        return flow.peer_load(problem)
    out = np.zeros(problem.traffic.num_items)
    for kind in problem.traffic.kinds:
        out += item_bytes(problem, kind, "source") + item_bytes(problem, kind, "target")
    return out


@register_peer("eplb", "EPLB's hierarchical policy per layer: experts to the layer's nodes, then to GPUs, "
               "largest load first (no spare slots, so no replicas)")
def eplb_style(problem: Problem, seed: int = 0) -> np.ndarray:
    base = classic_layout(problem, seed)
    load = token_load_I(problem)
    G = problem.gpus_per_node
    layer = problem.item_layer_I
    out = np.empty_like(base)
    for l in range(problem.model.num_moe_layers):
        items = np.flatnonzero(layer == l)
        slots = np.sort(base[items])
        nodes, per_node = np.unique(slots // G, return_counts=True)
        node_of = nodes[balanced_packing(load[items], per_node)]          # Step 1
        for n in nodes.tolist():                                          # Step 3
            mine = items[node_of == n]
            gpus, per_gpu = np.unique(slots[slots // G == n], return_counts=True)
            out[mine] = gpus[balanced_packing(load[mine], per_gpu)]
    return out
