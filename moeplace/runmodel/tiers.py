"""Bytes per step by tier: what a run's transports moved against what the objective prices (numpy only).

The objective (`placement.cost.evaluate`) gives bytes per token through the model by tier (same GPU, NVLink,
leaf, pod, core) at the model's token size; a run moves rows of `hidden x dtype` bytes for `tokens_per_step`
tokens. `predicted_bytes` scales the one into the other:

    predicted[tier] = objective bytes_by_tier[tier] x tokens_per_step x row_bytes / model.token_bytes

on the plan's own statistics (`moeplace validate`: the expected value), or on the exact routing a run drew
(`benchmarks/runtime_dedup_check.py`: equal to the measurement, not just in expectation). `measured_bytes`
splits a `measured.json`'s `node_pairs` by the plan's fabric: pairs inside a node are NVLink, others take the
node pair's tier. Same-GPU rows never travel, so neither side counts them.

The objective charges the combine without node-level dedup (the flow models' transfer lists: every secondary
or expert sends its own row), while the runtime pre-sums a token's rows per GPU and then per node: with top-2
chain the two agree exactly (one secondary per token); ep and top-k > 2 measure at most the prediction.
"""

from __future__ import annotations

import numpy as np

from moeplace.evaluation import PlanProblem
from moeplace.placement.builder import build_problem
from moeplace.placement.cost import evaluate
from moeplace.runmodel.measured import Measured
from moeplace.topologies.base import TIER_KEYS, TIER_LEAF, TIER_NVLINK
from moeplace.traces.stats import RoutingStats

MOVED_TIERS = TIER_KEYS[TIER_NVLINK:]  # nvlink, leaf, pod, core


def predicted_bytes(pp: PlanProblem, tokens_per_step: float, row_bytes: float,
                    paths_TLK: np.ndarray | None = None) -> dict[str, float]:
    """Objective bytes per step by tier (nvlink ... core); on `paths_TLK` [tokens, layers, k] when given
    (the routing a run drew), else on the plan's own statistics."""
    problem = pp.problem
    if paths_TLK is not None:
        plan = pp.plan
        stats = RoutingStats.from_paths(paths_TLK, plan.model.num_experts, keep_paths=None)
        problem = build_problem(plan.model, plan.cluster, stats, fabric=problem.fabric, flow=problem.flow,
                                dedup=problem.dedup, tier_costs=problem.tier_costs,
                                balance_per_layer=problem.balance_per_layer, copies_LE=plan.copies_LE())
    per_token = evaluate(problem, pp.item_gpu_I).bytes_by_tier
    scale = tokens_per_step * row_bytes / pp.plan.model.token_bytes
    return {key: float(per_token[i]) * scale for i, key in enumerate(TIER_KEYS) if key in MOVED_TIERS}


def measured_bytes(pp: PlanProblem, measured: Measured) -> dict[str, float]:
    """A run's bytes per step by tier, its node pairs classified by the plan's fabric."""
    tier_NN = pp.problem.fabric.node_tier_NN
    out = {key: 0.0 for key in MOVED_TIERS}
    for a, b, nbytes in measured.node_pairs:
        out[TIER_KEYS[TIER_NVLINK if a == b else int(tier_NN[a, b])]] += float(nbytes)
    return out


def network(by_tier: dict[str, float]) -> float:
    """Cross-node bytes: every tier from leaf up."""
    return float(sum(v for k, v in by_tier.items() if TIER_KEYS.index(k) >= TIER_LEAF))


def row_bytes(measured: Measured) -> int:
    return int(measured.model.get("hidden", 0)) * {"fp32": 4, "bf16": 2, "fp16": 2}.get(measured.dtype, 2)


def bytes_rows(pp: PlanProblem, measured: Measured) -> list[dict]:
    """`moeplace validate`'s bytes table: per tier that moved anything, and the network total, measured
    against the objective on the plan's statistics (the expected value for the run's tokens per step)."""
    pred = predicted_bytes(pp, measured.tokens_per_step, row_bytes(measured))
    meas = measured_bytes(pp, measured)
    rows = [{"tier": k, "measured_bytes": round(meas[k], 1), "predicted_bytes": round(pred[k], 1)}
            for k in MOVED_TIERS if meas[k] > 0 or pred[k] > 0]
    rows.append({"tier": "network", "measured_bytes": round(network(meas), 1),
                 "predicted_bytes": round(network(pred), 1)})
    for r in rows:
        r["ratio"] = round(r["measured_bytes"] / r["predicted_bytes"], 4) if r["predicted_bytes"] else None
    return rows
