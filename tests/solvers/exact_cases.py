"""Tiny instances with optima found by brute force, shared by the exact-backend and bound tests."""

from __future__ import annotations

from functools import cache

import numpy as np

from moeplace.placement.builder import build_problem
from moeplace.placement.cost import objective
from moeplace.placement.presets import load_cluster, load_model
from moeplace.topologies.base import Fabric, TierCosts, default_hosts, tiers_from_positions
from moeplace.traces.synth import synthesize

COSTS = TierCosts((0.0, 0.05, 1.0, 2.0, 3.0))


def tree(num_nodes: int, gpus_per_node: int, nodes_per_leaf: int, leaves_per_pod: int) -> Fabric:
    """A fat-tree by positions: consecutive nodes fill leaves, consecutive leaves fill pods."""
    leaf = np.arange(num_nodes) // nodes_per_leaf
    pod = leaf // leaves_per_pod
    return Fabric(kind="fat-tree", description="test tree", gpus_per_node=gpus_per_node,
                  node_tier_NN=tiers_from_positions(leaf, pod), node_leaf_N=leaf, node_pod_N=pod,
                  hosts=default_hosts(num_nodes))


def instance(layers: int, experts: int, nodes: int, gpus_per_node: int, *, epg: int = 1, flow: str = "chain",
             nodes_per_leaf: int = 2, leaves_per_pod: int = 1, affinity: float = 0.6, seed: int = 0,
             balance: bool = False, top_k: int = 2, tokens: int = 256):
    model = load_model(None, name="t", num_layers=layers, dense_layers=[], num_experts=experts, top_k=top_k,
                       hidden=8, expert_hidden=8, num_heads=1, head_dim=8)
    cluster = load_cluster(None, num_nodes=nodes, gpus_per_node=gpus_per_node, experts_per_gpu=epg)
    stats = synthesize(layers, experts, top_k, num_tokens=tokens, affinity=affinity, seed=seed)
    return build_problem(model, cluster, stats, flow=flow, fabric=tree(nodes, gpus_per_node, nodes_per_leaf,
                                                                       leaves_per_pod),
                         balance_per_layer=balance, tier_costs=COSTS)


CASES = {
    # 8 items, 4 nodes x 2 GPUs, leaves of 2 nodes: node and leaf levels, dedup on top-2 forwards
    "chain": dict(layers=2, experts=4, nodes=4, gpus_per_node=2),
    # HOME dispatch and combine
    "ep": dict(layers=2, experts=4, nodes=4, gpus_per_node=2, flow="ep"),
    # 3 nodes under leaves of 2 and 1: an irregular level (z booleans) and home cost varying by node
    "irregular": dict(layers=2, experts=3, nodes=3, gpus_per_node=2, flow="ep", seed=2),
    # 2 experts per GPU: the GPU level, with balance per layer
    "gpu-level": dict(layers=2, experts=4, nodes=2, gpus_per_node=2, epg=2, balance=True, seed=1),
    # fewer items than slots: dummies
    "not-full": dict(layers=2, experts=3, nodes=4, gpus_per_node=2, seed=3),
}


def problem(name: str):
    return instance(**CASES[name])


def _fill(num_items: int, caps: list[int], prefix: list[int]):
    """Every assignment of items to bins within capacities."""
    if len(prefix) == num_items:
        yield list(prefix)
        return
    for b, c in enumerate(caps):
        if c:
            caps[b] -= 1
            prefix.append(b)
            yield from _fill(num_items, caps, prefix)
            prefix.pop()
            caps[b] += 1


@cache
def brute_force(name: str) -> float:
    """The optimum over every placement: items into nodes (one expert per GPU: the GPU inside a node does
    not change the cost) or into GPUs (several experts per GPU)."""
    p = problem(name)
    by_gpu = p.experts_per_gpu > 1
    caps = [p.experts_per_gpu] * p.num_gpus if by_gpu else [p.gpus_per_node] * p.num_nodes
    best = np.inf
    for bins in _fill(p.num_items, caps, []):
        b = np.asarray(bins)
        if by_gpu:
            plan = b
        else:
            plan = np.empty_like(b)
            for node in np.unique(b):
                members = np.flatnonzero(b == node)
                plan[members] = node * p.gpus_per_node + np.arange(members.size)
        if p.balance_per_layer:
            per = np.zeros((p.num_gpus, p.model.num_moe_layers), dtype=int)
            np.add.at(per, (plan, p.item_layer_I), 1)
            if per.max() > p.layer_cap_per_gpu:
                continue
        best = min(best, objective(p, plan))
    return float(best)


def remote_nodes(p, item_gpu_I, domain_N=None) -> float:
    """sum_h w_h x the nodes other than its source's that item-sourced hyperedge h reaches (only those outside
    the source's domain when `domain_N` is given), straight from the definition."""
    tr = p.traffic
    node = item_gpu_I // p.gpus_per_node
    total = 0.0
    for s, targets, w in zip(tr.src_H, tr.dst_HK, tr.bytes_H):
        if s < 0:
            continue
        reached = {int(node[t]) for t in targets if t >= 0 and t != s} - {int(node[s])}
        if domain_N is not None:
            reached = {n for n in reached if domain_N[n] != domain_N[node[s]]}
        total += w * len(reached)
    return total
