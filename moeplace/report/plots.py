"""The report's plots as blocks ("plot", svg, caption), built from the comparison's rows and plot data."""

from __future__ import annotations

import numpy as np

from moeplace.report import svg
from moeplace.report.compare import Comparison
from moeplace.topologies.base import TIER_KEYS


def _curve(c: Comparison, key: str, y: str) -> list[dict]:
    return [{"label": s["label"], "x": s["x"], "y": s[y], "hollow": [not f for f in s["fits"]]}
            for s in c.plots["curves"].get(key, [])]


def world_plots(c: Comparison, world: str, emphasis: str | None = None) -> list[tuple]:
    k = f"{world}/equal-gpus"
    note = "equal GPUs; open markers: does not fit memory; the seed design's line is the thick one, drawn on top"
    specs = (("decode throughput per GPU", "decode", "tokens_per_s_per_gpu", "batch (sequences)", "tokens/s per GPU"),
             ("decode latency per token", "decode", "latency_ms", "batch (sequences)", "ms per output token"),
             ("prefill throughput per GPU", "prefill", "tokens_per_s_per_gpu", "prompt tokens", "tokens/s per GPU"),
             ("prefill latency of the batch", "prefill", "latency_ms", "prompt tokens", "ms per batch"))
    return [("plot", svg.line_chart(f"{world}: {title}", _curve(c, f"{k}/{phase}", y), xlabel=xl, ylabel=yl,
                                    emphasis=emphasis), note)
            for title, phase, y, xl, yl in specs]


def sweep_plots(c: Comparison, sw: dict, emphasis: str | None = None) -> list[tuple]:
    """One plot per hardware profile (lines of one profile only, so they can be told apart)."""
    out = []
    for world in dict.fromkeys(x["world"] for x in sw["rows"]):
        rows = [x for x in sw["rows"] if x["world"] == world]
        if sw["key"] == "experts-per-gpu":
            series = _by_value({"rows": rows})
        else:
            series = []
            for label in dict.fromkeys(x["label"] for x in rows):
                sel = sorted((x for x in rows if x["label"] == label), key=lambda x: x["sweep_value"])
                series.append({"label": label, "x": [x["sweep_value"] for x in sel],
                               "y": [x["tokens_per_s_per_gpu"] for x in sel], "hollow": [not x["fits"] for x in sel]})
        out.append(("plot", svg.line_chart(f"{world}: sweep {sw['key']}, throughput per GPU", series,
                                           xlabel=sw["key"], ylabel="tokens/s per GPU", emphasis=emphasis),
                    f"hardware {world}; equal GPUs; open markers: does not fit memory"))
    return out


def _by_value(sw: dict) -> list[dict]:
    """experts-per-gpu: one line per world and attention variant across the designs (1 = the seed)."""
    out = []
    for world in dict.fromkeys(x["world"] for x in sw["rows"]):
        for att in ("dp", "tp"):
            sel = sorted((x for x in sw["rows"] if x["world"] == world and (x["design"] == "seed"
                                                                            or x["design"].endswith(att))),
                         key=lambda x: x["sweep_value"])
            if sel:
                out.append({"label": f"{att.upper()} attention", "x": [x["sweep_value"] for x in sel],
                            "y": [x["tokens_per_s_per_gpu"] for x in sel], "hollow": [not x["fits"] for x in sel]})
    return out


def shared_plots(c: Comparison) -> list[tuple]:
    out: list[tuple] = []
    pd = c.plots
    if pd["traffic"]:
        cats = [t["label"] for t in pd["traffic"]]
        stacks = [(tier, [t["tiers"][tier] for t in pd["traffic"]]) for tier in TIER_KEYS[1:]]
        out.append(("h2", "Traffic, stages and links"))
        out.append(("plot", svg.hbars("bytes per token by tier (cost-model transfers)", cats, stacks,
                                      xlabel="bytes per token through the model"),
                    f"world {c.worlds[0]['key']}, decode at capacity; the chain's objective counts "
                    + ", ".join(f"{t['flow_cross_node']:,.0f}" for t in pd["traffic"][:1])
                    + " cross-node B/token without the attention detour"))
    for st in pd["stages"]:
        n = len(st["attention_ms"])
        cats = [str(i) for i in range(n)]
        stacks = [("attention (+ dense)", st["attention_ms"]), ("experts (hottest GPU)", st["experts_ms"]),
                  ("transfers", st["transfers_ms"])]
        out.append(("plot", svg.stacked_bars(f"{st['label']}: time per layer, {st['phase']}", cats, stacks,
                                             ylabel="ms per micro-batch", label_every=max(1, n // 29)),
                    f"{st['workload']}; {st['micro_tokens']:,.0f} tokens per micro-batch; MoE layer index"))
    for hm in pd["heatmaps"]:
        nic = np.asarray(hm["nic_util"])
        out.append(("plot", svg.heatmap(f"NIC utilization, {hm['label']}, {hm['phase']}", nic.T.tolist(),
                                        xlabel="node", ylabel="NIC", vmax=max(1e-9, float(nic.max()))),
                    f"{hm['workload']}; {hm['method']}; colour scale 0 to the busiest NIC"))
        if hm["switch_links"]:
            busiest = "; ".join(f"{name} {100 * u:.1f}%" for name, u in hm["busiest"])
            for lo, hi, sub in _level_blocks(hm):
                out.append(("plot", svg.heatmap(f"level {lo}-{hi} switch links, {hm['phase']}", sub.tolist(),
                                                xlabel=f"level-{hi} switch", ylabel=f"level-{lo} switch",
                                                vmax=max(1e-9, float(sub.max()))),
                            (f"{hm['label']}, {hm['workload']}; the busier direction of each link; busiest links "
                            f"overall: {busiest}")))
    return out


def _level_blocks(hm: dict) -> list[tuple[int, int, np.ndarray]]:
    """Switch-to-switch link utilization as one matrix per pair of adjacent levels (lower level rows)."""
    level = np.asarray(hm["switch_levels"])
    links = hm["switch_links"]
    out = []
    for lo in sorted(set(level.tolist())):
        hi = lo + 1
        sel = [(int(a), int(b), u) for a, b, u in links if {level[int(a)], level[int(b)]} == {lo, hi}]
        if not sel:
            continue
        rows = sorted({a if level[a] == lo else b for a, b, _ in sel})
        cols = sorted({b if level[a] == lo else a for a, b, _ in sel})
        ri, ci = {s: k for k, s in enumerate(rows)}, {s: k for k, s in enumerate(cols)}
        m = np.full((len(rows), len(cols)), -1.0)
        for a, b, u in sel:
            r, c = (a, b) if level[a] == lo else (b, a)
            m[ri[r], ci[c]] = u
        out.append((lo, hi, m))
    return out
