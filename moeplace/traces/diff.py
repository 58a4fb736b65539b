"""How far two workloads differ: per-layer distances of loads and transitions, and their measures side by side.

    load_tv    total-variation distance between the layer's load distributions, 1/2 sum_e |p_e - p'_e|:
               the share of expert choices that would have to move to turn one workload into the other
    coact_tv   the same over the co-activation pairs (e, f) of the layer
    trans_tv   the same over the transition pairs (e at l, f at l+1)
    *_noise    the distance two samples of these sizes from one workload would show by chance:
               1/2 sum_i sqrt(2/pi) sqrt(p_i (1/n + 1/n')), p the pooled distribution, n the counts
               (choices or pairs; correlations within a token are ignored, so it is a rough floor)

Distances need the same layers and experts; workloads of different shapes are compared by measures only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moeplace.traces.measures import Measures, measure
from moeplace.traces.stats import RoutingStats


def tv_distance(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(distance, noise floor) between two count arrays over the same support."""
    na, nb = float(a.sum()), float(b.sum())
    if na <= 0 or nb <= 0:
        return float("nan"), float("nan")
    pa, pb = a.ravel() / na, b.ravel() / nb
    pooled = (a.ravel() + b.ravel()) / (na + nb)
    noise = 0.5 * np.sqrt(2 / np.pi) * np.sqrt(pooled * (1 / na + 1 / nb)).sum()
    return float(0.5 * np.abs(pa - pb).sum()), float(noise)


@dataclass(frozen=True)
class Diff:
    same_shape: bool
    layer_numbers: tuple[int, ...] | None
    per_layer: dict[str, list[float]]
    per_transition: dict[str, list[float]]
    measures_a: Measures
    measures_b: Measures

    def summary(self) -> dict[str, float]:
        out = {}
        for name, vals in {**self.per_layer, **self.per_transition}.items():
            v = np.asarray(vals, float)
            if v.size and np.isfinite(v).any():
                out[f"{name}_mean"] = float(np.nanmean(v))
                out[f"{name}_max"] = float(np.nanmax(v))
        return out

    def as_dict(self) -> dict:
        return {"same_shape": self.same_shape, "layer_numbers": self.layer_numbers, "per_layer": self.per_layer,
                "per_transition": self.per_transition, "summary": self.summary(),
                "measures_a": self.measures_a.summary(), "measures_b": self.measures_b.summary()}


def diff_stats(a: RoutingStats, b: RoutingStats) -> Diff:
    ma, mb = measure(a), measure(b)
    same = (a.num_moe_layers, a.num_experts) == (b.num_moe_layers, b.num_experts)
    per_layer: dict[str, list[float]] = {}
    per_trans: dict[str, list[float]] = {}
    if same:
        L = a.num_moe_layers
        rows = [tv_distance(a.load_LE[li], b.load_LE[li]) for li in range(L)]
        per_layer["load_tv"] = [r[0] for r in rows]
        per_layer["load_tv_noise"] = [r[1] for r in rows]
        if a.has("coact") and b.has("coact") and a.top_k > 1 and b.top_k > 1:
            rows = [tv_distance(a.coact_LEE[li], b.coact_LEE[li]) for li in range(L)]
            per_layer["coact_tv"] = [r[0] for r in rows]
            per_layer["coact_tv_noise"] = [r[1] for r in rows]
        if a.has("trans") and b.has("trans") and a.trans_pairing == b.trans_pairing:
            rows = [tv_distance(a.trans_LEE[li], b.trans_LEE[li]) for li in range(L - 1)]
            per_trans["trans_tv"] = [r[0] for r in rows]
            per_trans["trans_tv_noise"] = [r[1] for r in rows]
    return Diff(same_shape=same, layer_numbers=a.layer_numbers if same else None, per_layer=per_layer,
                per_transition=per_trans, measures_a=ma, measures_b=mb)
