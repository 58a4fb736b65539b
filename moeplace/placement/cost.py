"""The objective: the only definition of what a plan costs, used by every solver, validator and report.

For every hyperedge of the traffic (one token vector sent from a source to a set of targets) the transfers
are classified by tier (same GPU, NVLink, leaf, pod, core) by the node-dedup rule (`dedup_columns`, the only
definition of it: the cost model and the fabric's link loads use it too); the plan's cost is

    objective = sum over tiers t of bytes_per_token[t] * tier_cost[t]

in leaf-byte equivalents per token through the model. `edge_tier_counts` is the kernel; solvers compute
move deltas with it on the hyperedges an item touches, so deltas and totals always agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

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


class DedupColumn(NamedTuple):
    """The node-dedup rule for target column j of H hyperedges: bool [H] masks, disjoint; a target in none
    of them repeats an earlier target's GPU, or is padding (no transfer).

        same_gpu   on the item source's GPU: free
        nvlink     another GPU of the item source's node: NVLink from the source
        relayed    a node an earlier target of the edge already reached: NVLink from that target,
                   `relay_gpu` (int [H], -1 where not relayed; computed only when asked for)
        network    the first target on a remote node of an item source: one network crossing
        home       the first target on its node of a HOME-sourced edge: from every GPU, uniformly

    `node` (int [H]) is each target's node (-1: padding), `src_node` each source's (0 for HOME).
    """

    j: int
    same_gpu: np.ndarray
    nvlink: np.ndarray
    relayed: np.ndarray
    network: np.ndarray
    home: np.ndarray
    relay_gpu: np.ndarray | None
    node: np.ndarray
    src_node: np.ndarray


def dedup_columns(src_gpu_H: np.ndarray, dst_gpu_HK: np.ndarray, gpus_per_node: int, *,
                  relay: bool = False) -> Iterator[DedupColumn]:
    """The one definition of node-level dedup (source HOME = -1, padded targets = -1), used by the
    objective, the cost model's transfers and the GPU-to-GPU traffic the fabric routes; columns with no
    target are skipped. relay: also say which earlier target each relayed one receives from."""
    H, K = dst_gpu_HK.shape
    is_home = src_gpu_H == HOME
    not_home = ~is_home
    g_src = np.where(is_home, 0, src_gpu_H)
    n_src = g_src // gpus_per_node
    valid = dst_gpu_HK != PAD
    gd = dst_gpu_HK
    nd = np.where(valid, gd // gpus_per_node, -1)
    nothing = np.zeros(H, dtype=bool)
    for j in range(K):
        v = valid[:, j]
        if not v.any():
            continue
        g, n = gd[:, j], nd[:, j]
        first, dup_node = v, nothing
        relay_gpu = np.full(H, -1, dtype=np.int64) if relay else None
        if j:
            dup_gpu = valid[:, 0] & (gd[:, 0] == g)
            dup_node = valid[:, 0] & (nd[:, 0] == n)
            if relay_gpu is not None:
                relay_gpu[dup_node] = gd[dup_node, 0]
            for i in range(1, j):
                dup_gpu |= valid[:, i] & (gd[:, i] == g)
                hit = valid[:, i] & (nd[:, i] == n)
                if relay_gpu is not None:
                    new = hit & ~dup_node
                    relay_gpu[new] = gd[new, i]
                dup_node = dup_node | hit
            first = v & ~dup_gpu
        item_src = first & not_home
        home_src = first & is_home
        same_gpu = item_src & (g == g_src)
        moved = item_src ^ same_gpu
        same_node = n == n_src
        away = moved & ~same_node
        if j:
            relayed = (away | home_src) & dup_node
            network, home = away & ~dup_node, home_src & ~dup_node
            if relay_gpu is not None:
                relay_gpu[~relayed] = -1
        else:
            relayed, network, home = nothing, away, home_src
        yield DedupColumn(j, same_gpu, moved & same_node, relayed, network, home, relay_gpu, n, n_src)


def tier_counts(problem: Problem, src_gpu_H: np.ndarray, dst_gpu_HK: np.ndarray,
                home_dist_NT: np.ndarray | None = None) -> np.ndarray:
    """float [H, tiers]: the kernel, on explicit GPUs (source HOME = -1, padded targets = -1).

    Per hyperedge (`dedup_columns`): targets on the source's GPU or on a GPU already reached cost nothing;
    other GPUs of the source's node and further GPUs of an already reached remote node cost one NVLink
    transfer; the first target on a remote node costs one transfer at the node pair's tier.
    """
    H = dst_gpu_HK.shape[0]
    tier_NN = problem.fabric.node_tier_NN
    out = np.zeros((H, NUM_TIERS))
    rows = np.arange(H)
    if home_dist_NT is None and (src_gpu_H == HOME).any():
        home_dist_NT = home_tier_dist(problem)
    for c in dedup_columns(src_gpu_H, dst_gpu_HK, problem.gpus_per_node):
        n = c.node
        if c.home.any():
            out[c.home] += home_dist_NT[n[c.home]]
        out[c.same_gpu, TIER_SAME_GPU] += 1
        out[c.nvlink | c.relayed, TIER_NVLINK] += 1
        out[rows[c.network], tier_NN[c.src_node[c.network], n[c.network]]] += 1
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
