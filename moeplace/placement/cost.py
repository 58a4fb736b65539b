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


NO_COST = NUM_TIERS          # target_tiers code: padding, or a GPU the hyperedge already reached
HOME_REMOTE = NUM_TIERS + 1  # target_tiers code: first target on its node of a HOME source (tiers by home_tier_dist)


def target_tiers(problem: Problem, src_gpu_H: np.ndarray, dst_gpu_HK: np.ndarray) -> np.ndarray:
    """int8 [H, K]: the kernel, on explicit GPUs (source HOME = -1, padded targets = -1): each target's tier.

    Per hyperedge: targets on the source's GPU cost a same-GPU transfer; targets on a GPU already reached
    cost nothing (`NO_COST`); other GPUs of the source's node and further GPUs of an already reached remote
    node cost one NVLink transfer; the first target on a remote node costs one transfer at the node pair's
    tier (node-level dedup); for a HOME source that is `HOME_REMOTE` (uniform home GPU: `home_tier_dist`).
    """
    K = dst_gpu_HK.shape[1]
    G = problem.gpus_per_node
    n_src = src_gpu_H // G                      # HOME (-1) -> -1, PAD (-1) -> -1: fixed below
    n_dst = dst_gpu_HK // G
    code = problem.fabric.node_tier_NN[n_src[:, None], n_dst]   # the diagonal is NVLink: same node
    code[dst_gpu_HK == src_gpu_H[:, None]] = TIER_SAME_GPU
    is_home = src_gpu_H == HOME
    if is_home.any():
        code[is_home] = HOME_REMOTE
    for j in range(1, K):
        g, n = dst_gpu_HK[:, j:j + 1], n_dst[:, j:j + 1]
        col = code[:, j]
        col[(n_dst[:, :j] == n).any(axis=1) & (g[:, 0] != src_gpu_H)] = TIER_NVLINK  # a node already reached
        col[(dst_gpu_HK[:, :j] == g).any(axis=1)] = NO_COST   # a GPU already reached
    code[dst_gpu_HK == PAD] = NO_COST
    return code


def tier_counts(problem: Problem, src_gpu_H: np.ndarray, dst_gpu_HK: np.ndarray,
                home_dist_NT: np.ndarray | None = None) -> np.ndarray:
    """float [H, tiers]: transfers per tier of each hyperedge (`target_tiers`, counted)."""
    code = target_tiers(problem, src_gpu_H, dst_gpu_HK)
    H, K = code.shape
    flat = np.bincount((np.arange(H)[:, None] * (NUM_TIERS + 2) + code).ravel(), minlength=H * (NUM_TIERS + 2))
    out = flat.reshape(H, NUM_TIERS + 2)[:, :NUM_TIERS].astype(np.float64)
    rows, cols = np.nonzero(code == HOME_REMOTE)
    if rows.size:
        if home_dist_NT is None:
            home_dist_NT = home_tier_dist(problem)
        np.add.at(out, rows, home_dist_NT[dst_gpu_HK[rows, cols] // problem.gpus_per_node])
    return out


def edge_costs(problem: Problem, src_gpu_H: np.ndarray, dst_gpu_HK: np.ndarray,
               home_cost_N: np.ndarray | None = None) -> np.ndarray:
    """float [H]: tier-weighted transfers of each hyperedge (`tier_counts @ tier_costs`, without the counts).

    home_cost_N: `home_tier_dist(problem) @ tier_costs`, precomputed by callers that evaluate often.
    """
    code = target_tiers(problem, src_gpu_H, dst_gpu_HK)
    cost = np.concatenate([problem.tier_costs.array, [0.0, 0.0]])[code]
    home = code == HOME_REMOTE
    if home.any():
        if home_cost_N is None:
            home_cost_N = home_tier_dist(problem) @ problem.tier_costs.array
        cost[home] = home_cost_N[dst_gpu_HK[home] // problem.gpus_per_node]
    return cost.sum(axis=1)


def edge_cost_total(problem: Problem, item_gpu_I: np.ndarray, edges: np.ndarray,
                    home_cost_N: np.ndarray | None = None) -> float:
    """The objective's share of `edges` (int [E]) under the assignment: what a move's exact delta compares."""
    tr = problem.traffic
    src = tr.src_H[edges]
    dst = tr.dst_HK[edges]
    src_gpu = np.where(src >= 0, item_gpu_I[src], HOME)     # HOME = PAD = -1 pick the last item: replaced
    dst_gpu = np.where(dst >= 0, item_gpu_I[dst], PAD)
    return float(tr.bytes_H[edges] @ edge_costs(problem, src_gpu, dst_gpu, home_cost_N))


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
