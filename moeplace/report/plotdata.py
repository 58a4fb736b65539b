"""The numbers behind the report's plots, as plain lists (JSON-ready), all taken from rows or predictions.

    curves      tokens/s per GPU and latency against decode batch and prefill prompt length, per world,
                scale and design
    traffic     bytes per token by tier per design (cost-model transfers), first world, decode capacity
    stages      per-layer time of one micro-batch split into attention (+ dense), experts, transfers, for
                the seed design and the best fitting baseline, decode and prefill capacity
    heatmaps    NIC utilization [nodes x NICs] and switch-link utilization ([[switch, switch, util]] for
                every switch-to-switch link) of the seed design at decode capacity and prefill capacity
"""

from __future__ import annotations

import numpy as np


def _series(rows: list[dict], point: str, world: str, scale: str, x: str, ys: tuple[str, ...]) -> list[dict]:
    out = []
    for label in dict.fromkeys(r["label"] for r in rows if r["point"] == point):
        sel = sorted((r for r in rows if r["point"] == point and r["world"] == world and r["scale"] == scale
                      and r["label"] == label), key=lambda r: r[x])
        if sel:
            out.append({"label": label, "x": [r[x] for r in sel], "fits": [r["fits"] for r in sel],
                        **{y: [r[y] for r in sel] for y in ys}})
    return out


def _round(a: np.ndarray, nd: int = 4) -> list:
    return np.round(np.nan_to_num(np.asarray(a, dtype=np.float64), nan=-1.0), nd).tolist()


def _sparse(m: np.ndarray) -> list[list[float]]:
    """[[row, col, value]] of the defined cells of a symmetric matrix (upper triangle)."""
    i, j = np.nonzero(np.triu(~np.isnan(m)))
    return [[int(a), int(b), round(float(m[a, b]), 6)] for a, b in zip(i, j)]


def plot_data(r, ds, rows: list[dict]) -> dict:
    worlds = [w.key for w in r.worlds]
    curves = {}
    for w in worlds:
        for scale in ("equal-gpus", "one-instance"):
            curves[f"{w}/{scale}/decode"] = _series(rows, "decode-batch", w, scale, "batch",
                                                    ("tokens_per_s_per_gpu", "latency_ms"))
            curves[f"{w}/{scale}/prefill"] = _series(rows, "prefill", w, scale, "seq_len",
                                                     ("tokens_per_s_per_gpu", "latency_ms"))
    first = r.worlds[0]
    traffic = [{"label": x["label"], "tiers": x["bytes_per_token_by_tier"],
                "flow_cross_node": x["flow_cross_node_bytes_per_token"]}
               for x in rows if x["point"] == "decode-capacity" and x["world"] == first.key
               and x["scale"] == "equal-gpus"]
    seed = next((d for d in ds if d.experts_per_gpu == 1), None)
    stages, heatmaps = [], []
    picks = []
    if seed is not None:
        picks.append(seed)
    fitting = [x for x in rows if x["point"] == "decode-capacity" and x["world"] == first.key
               and x["scale"] == "equal-gpus" and x["design"] != "seed" and x["fits"]]
    if fitting:
        best = max(fitting, key=lambda x: x["tokens_per_s"])
        picks += [d for d in ds if d.key == best["design"]]
    for d in picks:
        for name, p in (("decode", r.capacity(first, d, "equal-gpus")),
                        ("prefill", r.capacity(first, d, "equal-gpus", "prefill"))):
            t = p.timing
            stages.append({"label": p.deployment, "phase": name, "workload": p.workload.label(),
                           "micro_tokens": p.micro_tokens, "attention_ms": _round(t.attention_us_L / 1e3),
                           "experts_ms": _round(t.expert_us_L / 1e3), "transfers_ms": _round(t.comm_us_L / 1e3)})
            if d is seed:
                sw = p.links.switch_matrix
                rate = p.tokens_per_s / p.active_instances
                heatmaps.append({"label": p.deployment, "phase": name, "workload": p.workload.label(),
                                 "world": first.key, "method": p.links.method,
                                 "nic_util": _round(p.nic_util_NR),
                                 "switch_links": None if sw is None else _sparse(sw[0] * rate / 1e6),
                                 "switch_names": None if sw is None else list(sw[1]),
                                 "switch_levels": None if sw is None else [int(x) for x in sw[2]],
                                 "busiest": [(name_, float(us * rate / 1e6))
                                             for name_, us in p.links.busiest(5)]})
    return {"curves": curves, "traffic": traffic, "stages": stages, "heatmaps": heatmaps}
