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


# dedup_codes: what each target of a hyperedge costs under node-level dedup
D_SAME_GPU, D_NVLINK, D_RELAYED, D_NETWORK, D_HOME, D_NONE = range(6)


def dedup_codes(src_gpu_H: np.ndarray, dst_gpu_HK: np.ndarray, gpus_per_node: int) -> np.ndarray:
    """int8 [H, K]: the one definition of node-level dedup (source HOME = -1, padded targets = -1).

    Per hyperedge: a target on the source's GPU is `D_SAME_GPU`; one on a GPU already reached costs nothing
    (`D_NONE`, padding too); another GPU of the source's node is `D_NVLINK`; a further target on a remote
    node already reached is `D_RELAYED` (NVLink from the earlier target); the first target on a remote node
    is one network crossing, `D_NETWORK`, or `D_HOME` for a HOME source (its GPU uniform over all GPUs).
    Used by the objective (`target_tiers`), the cost model's transfers and the fabric's GPU traffic
    (`dedup_columns`)."""
    K = dst_gpu_HK.shape[1]
    valid = dst_gpu_HK != PAD
    n_src = np.where(src_gpu_H >= 0, src_gpu_H // gpus_per_node, -1)
    n_dst = np.where(valid, dst_gpu_HK // gpus_per_node, -2)
    code = np.full(dst_gpu_HK.shape, D_NETWORK, dtype=np.int8)
    code[n_dst == n_src[:, None]] = D_NVLINK
    code[(dst_gpu_HK == src_gpu_H[:, None]) & valid] = D_SAME_GPU
    code[src_gpu_H == HOME] = D_HOME
    for j in range(1, K):
        col = code[:, j]
        reached = (n_dst[:, :j] == n_dst[:, j:j + 1]).any(axis=1)
        col[reached & ((col == D_NETWORK) | (col == D_HOME))] = D_RELAYED
        col[(dst_gpu_HK[:, :j] == dst_gpu_HK[:, j:j + 1]).any(axis=1)] = D_NONE
    code[~valid] = D_NONE
    return code


def dedup_columns(src_gpu_H: np.ndarray, dst_gpu_HK: np.ndarray, gpus_per_node: int, *,
                  relay: bool = False) -> Iterator[DedupColumn]:
    """`dedup_codes` column by column, as masks; columns with no target are skipped. relay: also say which
    earlier target each relayed one receives from (the first on its node)."""
    code = dedup_codes(src_gpu_H, dst_gpu_HK, gpus_per_node)
    H, K = dst_gpu_HK.shape
    valid = dst_gpu_HK != PAD
    nd = np.where(valid, dst_gpu_HK // gpus_per_node, -1)
    n_src = np.where(src_gpu_H == HOME, 0, src_gpu_H) // gpus_per_node
    rows = np.arange(H)
    for j in range(K):
        if not valid[:, j].any():
            continue
        c = code[:, j]
        relayed = c == D_RELAYED
        relay_gpu = None
        if relay:
            relay_gpu = np.full(H, -1, dtype=np.int64)
            if j and relayed.any():
                first = np.argmax(nd[:, :j] == nd[:, j:j + 1], axis=1)
                relay_gpu[relayed] = dst_gpu_HK[rows[relayed], first[relayed]]
        yield DedupColumn(j, c == D_SAME_GPU, c == D_NVLINK, relayed, c == D_NETWORK, c == D_HOME, relay_gpu,
                          nd[:, j], n_src)


NO_COST = NUM_TIERS          # target_tiers code: padding, or a GPU the hyperedge already reached
HOME_REMOTE = NUM_TIERS + 1  # target_tiers code: first target on its node of a HOME source (tiers by home_tier_dist)
_CODE_TIER = np.array([TIER_SAME_GPU, TIER_NVLINK, TIER_NVLINK, -1, HOME_REMOTE, NO_COST], dtype=np.int8)


def target_tiers(problem: Problem, src_gpu_H: np.ndarray, dst_gpu_HK: np.ndarray) -> np.ndarray:
    """int8 [H, K]: each target's tier under `dedup_codes` (source HOME = -1, padded targets = -1): a network
    crossing at its node pair's tier, `NO_COST` for nothing, `HOME_REMOTE` for a HOME source's first target
    on a node (uniform home GPU: `home_tier_dist`)."""
    G = problem.gpus_per_node
    code = dedup_codes(src_gpu_H, dst_gpu_HK, G)
    tier = _CODE_TIER[code]
    rows, cols = np.nonzero(code == D_NETWORK)
    if rows.size:
        tier[rows, cols] = problem.fabric.node_tier_NN[src_gpu_H[rows] // G, dst_gpu_HK[rows, cols] // G]
    return tier


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
    if dst_gpu_HK.shape[1] == 2:
        return _edge_costs_two(problem, src_gpu_H, dst_gpu_HK, home_cost_N)
    code = target_tiers(problem, src_gpu_H, dst_gpu_HK)
    cost = np.concatenate([problem.tier_costs.array, [0.0, 0.0]])[code]
    home = code == HOME_REMOTE
    if home.any():
        if home_cost_N is None:
            home_cost_N = home_tier_dist(problem) @ problem.tier_costs.array
        cost[home] = home_cost_N[dst_gpu_HK[home] // problem.gpus_per_node]
    return cost.sum(axis=1)


def _edge_costs_two(problem: Problem, s: np.ndarray, d: np.ndarray, home_cost_N: np.ndarray | None) -> np.ndarray:
    """`edge_costs` for hyperedges of at most two targets (the chain flow), in a few array operations: the same
    per-target costs as `dedup_codes` -> `target_tiers` (checked against them in tests/placement) and the
    same sum, c0 + c1, bit for bit. The local search calls this on a few hundred hyperedges per move."""
    G = problem.gpus_per_node
    T = problem.tier_costs.array
    d0, d1 = d[:, 0], d[:, 1]
    v0, v1 = d0 != PAD, d1 != PAD
    home = s == HOME
    ns = np.maximum(s, 0) // G
    n0, n1 = np.maximum(d0, 0) // G, np.maximum(d1, 0) // G
    net = problem.fabric.node_tier_NN
    c0 = np.where(d0 == s, T[TIER_SAME_GPU], np.where(n0 == ns, T[TIER_NVLINK], T[net[ns, n0]]))
    relayed = v0 & (n1 == n0)
    c1 = np.where(d1 == s, T[TIER_SAME_GPU], np.where((n1 == ns) | relayed, T[TIER_NVLINK], T[net[ns, n1]]))
    if home.any():
        if home_cost_N is None:
            home_cost_N = home_tier_dist(problem) @ T
        c0 = np.where(home, home_cost_N[n0], c0)
        c1 = np.where(home, np.where(relayed, T[TIER_NVLINK], home_cost_N[n1]), c1)
    return np.where(v0, c0, 0.0) + np.where(v1 & (d1 != d0), c1, 0.0)


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
