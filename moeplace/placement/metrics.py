"""Placement metrics on routing statistics or a per-token trace (`moeplace evaluate`).

With S_l the set of experts a token chose at MoE layer l:

    pair_cross_node_share   over tokens, consecutive layer pairs (l, l+1) and pairs (e in S_l, f in S_l+1):
                            the share with e and f on different nodes
    pair_cross_gpu_share    the same on different GPUs
    coact_cross_node_share  over (token, layer): the share whose top-k experts are not all on one node
    nodes_touched           mean number of distinct nodes among a token's top-k experts at a layer
    *_bytes_per_token       the objective's bytes under the plan's flow model (node dedup as configured)

Pair shares come from the transition counts (every token); the co-activation metrics need whole rows and
come from the token paths (the trace, or the statistics' path sample; for top-2 the counts suffice).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from moeplace.placement.cost import evaluate
from moeplace.placement.problem import Problem
from moeplace.placement.stats import RoutingStats


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

    def as_dict(self) -> dict:
        return asdict(self)


def placement_metrics(problem: Problem, item_gpu_I: np.ndarray, stats: RoutingStats) -> Metrics:
    """Metrics of `item_gpu_I` on `stats`; `problem.traffic` must be built from the same statistics."""
    E, L = stats.num_experts, stats.num_moe_layers
    gpn = problem.gpus_per_node
    gpu_LE = np.asarray(item_gpu_I).reshape(L, E)
    node_LE = gpu_LE // gpn
    if L > 1:
        t = stats.trans_LEE.astype(np.float64)
        diff_node = node_LE[:-1, :, None] != node_LE[1:, None, :]
        diff_gpu = gpu_LE[:-1, :, None] != gpu_LE[1:, None, :]
        total = t.sum()
        pair_node = float((t * diff_node).sum() / total) if total else 0.0
        pair_gpu = float((t * diff_gpu).sum() / total) if total else 0.0
    else:
        pair_node = pair_gpu = 0.0
    coact_share: float | None = None
    touched: float | None = None
    if stats.paths_TLK is not None and stats.paths_TLK.shape[0]:
        nodes = node_LE[np.arange(L)[None, :, None], stats.paths_TLK]   # [T, L, k]
        s = np.sort(nodes, axis=2)
        distinct = 1 + (s[:, :, 1:] != s[:, :, :-1]).sum(axis=2)
        coact_share = float((distinct > 1).mean())
        touched = float(distinct.mean())
    elif stats.top_k == 2:
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
                   flow=problem.flow)
