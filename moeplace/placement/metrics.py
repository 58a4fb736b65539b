"""Placement metrics on routing statistics or a per-token trace (`moeplace evaluate`).

With S_l the set of experts a token chose at MoE layer l:

    pair_cross_node_share   over tokens, consecutive layer pairs (l, l+1) and pairs (e in S_l, f in S_l+1):
                            the share with e and f on different nodes
    pair_cross_gpu_share    the same on different GPUs
    coact_cross_node_share  over (token, layer): the share whose top-k experts are not all on one node
    nodes_touched           mean number of distinct nodes among a token's top-k experts at a layer
    *_bytes_per_token       the objective's bytes under the plan's flow model (node dedup as configured)
    load_imbalance          largest over layers of the busiest GPU's tokens / the layer's mean per GPU

Pair shares come from the transition counts (every token); the co-activation metrics need whole rows and
come from the token paths (the trace, or the statistics' path sample; for top-2 the counts suffice).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from moeplace.placement.cost import evaluate
from moeplace.placement.problem import Problem
from moeplace.traces.stats import RoutingStats


@dataclass(frozen=True)
class Metrics:
    num_tokens: int
    pair_cross_node_share: float
    pair_cross_gpu_share: float
    coact_cross_node_share: float | None
    nodes_touched: float | None
    objective: float
    cross_node_bytes_per_token: float
    bytes_per_token_by_tier: dict[str, float]
    flow: str
    load_imbalance: float
    replicas: int

    def as_dict(self) -> dict:
        return asdict(self)


def _copies_nodes(problem: Problem, item_gpu_I: np.ndarray, L: int, E: int) -> tuple[np.ndarray, np.ndarray]:
    """GPU of every copy of every expert, int [L, E, max copies] (-1 padded), and each copy's share [same]."""
    from moeplace.placement.replication import copies_of

    groups = copies_of(problem.item_base_I, L * E)
    cmax = max(g.size for g in groups)
    gpu = np.full((L * E, cmax), -1, dtype=np.int64)
    share = np.zeros((L * E, cmax))
    for b, g in enumerate(groups):
        gpu[b, :g.size] = item_gpu_I[g]
        share[b, :g.size] = 1.0 / g.size
    return gpu.reshape(L, E, cmax), share.reshape(L, E, cmax)


def load_imbalance(problem: Problem, item_gpu_I: np.ndarray, load_LE: np.ndarray) -> float:
    """Largest over MoE layers of (busiest GPU's tokens of that layer) / (the layer's tokens per GPU holding it).

    Copies split their expert's tokens evenly. 1.0 is perfect balance; with one expert per GPU it is the
    hottest expert's load over the mean, the factor by which the slowest stage paces the pipeline.
    """
    L, E = load_LE.shape
    base = problem.item_base_I
    counts = np.bincount(base, minlength=L * E)
    per_item = load_LE.ravel()[base] / counts[base]
    layer = base // E
    gl = np.zeros((L, problem.num_gpus))
    np.add.at(gl, (layer, np.asarray(item_gpu_I)), per_item)
    holders = (np.zeros((L, problem.num_gpus), dtype=bool))
    holders[layer, np.asarray(item_gpu_I)] = True
    mean = gl.sum(axis=1) / np.maximum(holders.sum(axis=1), 1)
    ratio = np.where(mean > 0, gl.max(axis=1) / np.where(mean > 0, mean, 1.0), 1.0)
    return float(ratio.max())


def placement_metrics(problem: Problem, item_gpu_I: np.ndarray, stats: RoutingStats) -> Metrics:
    """Metrics of `item_gpu_I` on `stats`; `problem.traffic` must be built from the same statistics.

    With copies, a token picks each expert's copy uniformly: pair shares are exact expectations over the
    copies, co-activation metrics draw one copy per choice with a fixed seed (deterministic).
    """
    E, L = stats.num_experts, stats.num_moe_layers
    gpn = problem.gpus_per_node
    gpu_LEC, share_LEC = _copies_nodes(problem, np.asarray(item_gpu_I), L, E)
    node_LEC = np.where(gpu_LEC >= 0, gpu_LEC // gpn, -1)
    C = gpu_LEC.shape[2]
    if L > 1:
        t = stats.trans_LEE.astype(np.float64)
        diff_node = np.zeros(t.shape)
        diff_gpu = np.zeros(t.shape)
        for r in range(C):
            for q in range(C):
                w = share_LEC[:-1, :, r, None] * share_LEC[1:, None, :, q]
                diff_node += w * (node_LEC[:-1, :, r, None] != node_LEC[1:, None, :, q])
                diff_gpu += w * (gpu_LEC[:-1, :, r, None] != gpu_LEC[1:, None, :, q])
        total = t.sum()
        pair_node = float((t * diff_node).sum() / total) if total else 0.0
        pair_gpu = float((t * diff_gpu).sum() / total) if total else 0.0
    else:
        pair_node = pair_gpu = 0.0
    coact_share: float | None = None
    touched: float | None = None
    if stats.paths_TLK is not None and stats.paths_TLK.shape[0]:
        paths = stats.paths_TLK
        lay = np.arange(L)[None, :, None]
        if C == 1:
            nodes = node_LEC[lay, paths, 0]
        else:
            counts = (gpu_LEC >= 0).sum(axis=2)[lay, paths]
            pick = (np.random.default_rng(0).random(paths.shape) * counts).astype(np.int64)
            nodes = node_LEC[lay, paths, pick]
        s = np.sort(nodes, axis=2)
        distinct = 1 + (s[:, :, 1:] != s[:, :, :-1]).sum(axis=2)
        coact_share = float((distinct > 1).mean())
        touched = float(distinct.mean())
    elif stats.top_k == 2 and C == 1:
        node_LE = node_LEC[:, :, 0]
        same = node_LE[:, :, None] == node_LE[:, None, :]
        pairs = stats.coact_LEE.sum() / 2
        cross = (stats.coact_LEE * ~same).sum() / 2
        coact_share = float(cross / pairs) if pairs else 0.0
        touched = 1.0 + coact_share
    elif stats.top_k == 1:
        coact_share, touched = 0.0, 1.0
    cost = evaluate(problem, item_gpu_I)
    labels = problem.fabric.tier_labels
    return Metrics(num_tokens=stats.num_tokens, pair_cross_node_share=pair_node, pair_cross_gpu_share=pair_gpu,
                   coact_cross_node_share=coact_share, nodes_touched=touched, objective=cost.objective,
                   cross_node_bytes_per_token=cost.cross_node_bytes,
                   bytes_per_token_by_tier={labels[i]: v for i, v in enumerate(cost.bytes_by_tier)},
                   flow=problem.flow, load_imbalance=load_imbalance(problem, item_gpu_I, stats.load_LE),
                   replicas=problem.num_replicas)
