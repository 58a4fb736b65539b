"""The objective: the only definition of what a plan costs, used by every solver, validator and report.

For every hyperedge of the traffic (one token vector sent from a source to a set of targets) the transfers
are classified by tier (same GPU, NVLink, leaf, pod, core); the plan's cost is

    objective = sum over tiers t of bytes_per_token[t] * tier_cost[t]

in leaf-byte equivalents per token through the model. `edge_tier_counts` is the kernel; solvers compute
move deltas with it on the hyperedges an item touches, so deltas and totals always agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moeplace.placement.problem import Problem
from moeplace.placement.traffic import HOME, PAD
from moeplace.topologies.base import NUM_TIERS, TIER_LEAF, TIER_NVLINK, TIER_SAME_GPU


@dataclass(frozen=True)
class CostBreakdown:
    objective: float
    bytes_by_tier: tuple[float, ...]
    bytes_by_kind: dict[str, float]
    cross_node_by_kind: dict[str, float]

    @property
    def cross_node_bytes(self) -> float:
        return float(sum(self.bytes_by_tier[TIER_LEAF:]))

    @property
    def network_transfers_per_token(self) -> float:
        return self.cross_node_bytes


def home_tier_dist(problem: Problem) -> np.ndarray:
    """float [nodes, tiers]: for a home GPU uniform over all GPUs, the probability of each tier to node n."""
    fab = problem.fabric
    N, G = fab.num_nodes, fab.gpus_per_node
    dist = np.zeros((N, NUM_TIERS))
    for t in range(TIER_LEAF, NUM_TIERS):
        dist[:, t] = (fab.node_tier_NN == t).sum(axis=0) / N
    dist[:, TIER_NVLINK] = (G - 1) / G / N
    dist[:, TIER_SAME_GPU] = 1.0 / G / N
    return dist


def edge_tier_counts(problem: Problem, item_gpu_I: np.ndarray, edges: np.ndarray | slice = slice(None),
                     home_dist_NT: np.ndarray | None = None) -> np.ndarray:
    """float [edges, tiers]: network crossings per tier of each hyperedge under the assignment."""
    tr = problem.traffic
    src = tr.src_H[edges]
    dst = tr.dst_HK[edges]
    src_gpu = np.where(src == HOME, HOME, item_gpu_I[np.maximum(src, 0)])
    dst_gpu = np.where(dst != PAD, item_gpu_I[np.maximum(dst, 0)], PAD)
    return tier_counts(problem, src_gpu, dst_gpu, home_dist_NT)


def tier_counts(problem: Problem, src_gpu_H: np.ndarray, dst_gpu_HK: np.ndarray,
                home_dist_NT: np.ndarray | None = None) -> np.ndarray:
    """float [H, tiers]: the kernel, on explicit GPUs (source HOME = -1, padded targets = -1).

    Per hyperedge: targets on the source's GPU or on a GPU already reached cost nothing; other GPUs of the
    source's node and further GPUs of an already reached remote node cost one NVLink transfer; the first
    target on a remote node costs one transfer at the node pair's tier (node-level dedup).
    """
    H, K = dst_gpu_HK.shape
    G = problem.gpus_per_node
    tier_NN = problem.fabric.node_tier_NN
    out = np.zeros((H, NUM_TIERS))
    rows = np.arange(H)
    is_home = src_gpu_H == HOME
    g_src = np.where(is_home, 0, src_gpu_H)
    n_src = g_src // G
    valid = dst_gpu_HK != PAD
    gd = dst_gpu_HK
    nd = np.where(valid, gd // G, -1)
    if home_dist_NT is None and is_home.any():
        home_dist_NT = home_tier_dist(problem)
    for j in range(K):
        v = valid[:, j]
        if not v.any():
            continue
        g, n = gd[:, j], nd[:, j]
        dup_gpu = np.zeros(H, dtype=bool)
        dup_node = np.zeros(H, dtype=bool)
        for i in range(j):
            dup_gpu |= valid[:, i] & (gd[:, i] == g)
            dup_node |= valid[:, i] & (nd[:, i] == n)
        first = v & ~dup_gpu
        home_first = first & is_home & ~dup_node
        if home_first.any():
            out[home_first] += home_dist_NT[n[home_first]]
        item_src = first & ~is_home
        same_gpu = item_src & (g == g_src)
        out[same_gpu, TIER_SAME_GPU] += 1
        local = (item_src & ~same_gpu & ((n == n_src) | dup_node)) | (first & is_home & dup_node)
        out[local, TIER_NVLINK] += 1
        remote = item_src & ~same_gpu & (n != n_src) & ~dup_node
        out[rows[remote], tier_NN[n_src[remote], n[remote]]] += 1
    return out


def evaluate(problem: Problem, item_gpu_I: np.ndarray) -> CostBreakdown:
    """Objective and bytes per token by tier and by transfer kind of a complete assignment."""
    tr = problem.traffic
    counts = edge_tier_counts(problem, item_gpu_I)
    weighted = counts * tr.bytes_H[:, None]
    by_tier = weighted.sum(axis=0)
    objective = float(by_tier @ problem.tier_costs.array)
    by_kind, cross_by_kind = {}, {}
    for idx, name in enumerate(tr.kinds):
        mask = tr.kind_H == idx
        by_kind[name] = float(weighted[mask].sum())
        cross_by_kind[name] = float(weighted[mask, TIER_LEAF:].sum())
    return CostBreakdown(objective=objective, bytes_by_tier=tuple(float(x) for x in by_tier), bytes_by_kind=by_kind,
                         cross_node_by_kind=cross_by_kind)


def objective(problem: Problem, item_gpu_I: np.ndarray) -> float:
    return evaluate(problem, item_gpu_I).objective
