"""The comparison report as a list of blocks, rendered to Markdown and HTML by `render.py`.

Blocks are tuples: ("h1"/"h2"/"h3", text), ("p", text), ("ul", [text]), ("table", columns, rows, right),
("plot", svg, caption). The same blocks make both files, so they always say the same thing; Markdown
leaves the plots to report.html.
"""

from __future__ import annotations

from moeplace.report import plots
from moeplace.report.compare import Comparison

Block = tuple


def f_int(x: float) -> str:
    return f"{x:,.0f}"


def f_ms(x: float) -> str:
    return f"{x:,.1f}" if x >= 10 else f"{x:.2f}"


def f_pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def f_sig(x: float) -> str:
    return f"{x:,.1f}" if x >= 1 else f"{x:.3g}"


SCALE_TEXT = {"equal-gpus": "equal GPUs", "one-instance": "one instance"}
COLUMNS = ["design", "scale", "GPUs", "batch", "tokens/s", "tokens/s/GPU", "latency ms", "MFU", "memory/GPU GB",
           "fits", "cross-node B/token", "peak NIC", "peak link", "bottleneck"]


def _row(x: dict) -> list[str]:
    fits = "yes" if x["fits"] else f"no (limit {x['memory_limit_gb']:.0f})"
    return [x["label"], SCALE_TEXT[x["scale"]], f_int(x["gpus"]), f_int(x["batch"]), f_int(x["tokens_per_s"]),
            f_sig(x["tokens_per_s_per_gpu"]), f_ms(x["latency_ms"]), f_pct(x["mfu"]), f"{x['memory_gb']:.1f}", fits,
            f_int(x["cross_node_bytes_per_token"]), f_pct(x["peak_nic_util"]), f_pct(x["peak_link_util"]),
            x["bottleneck"]]


RIGHT = (2, 3, 4, 5, 6, 7, 8, 10, 11, 12)


def _table(rows: list[dict], lead: tuple[str, str] | None = None) -> Block:
    """The standard columns; `lead` = (column name, row key) puts one more column first (prompt tokens, the
    hardware profile of a sweep row)."""
    if lead is None:
        return ("table", COLUMNS, [_row(x) for x in rows], RIGHT)
    name, key = lead
    fmt = (lambda v: f"`{v}`") if key == "world" else (lambda v: f_int(v) if isinstance(v, (int, float)) else str(v))
    right = ((0,) if key != "world" else ()) + tuple(i + 1 for i in RIGHT)
    return ("table", [name] + COLUMNS, [[fmt(x[key])] + _row(x) for x in rows], right)


def _pick(c: Comparison, point: str, world: str, seq_len: int | None = None) -> list[dict]:
    order = {s: i for i, s in enumerate(("equal-gpus", "one-instance"))}
    sel = [x for x in c.rows if x["point"] == point and x["world"] == world
           and (seq_len is None or x["seq_len"] == seq_len)]
    return sorted(sel, key=lambda x: order[x["scale"]])


def verdict(c: Comparison) -> list[str]:
    """Plain sentences from the numbers: who wins each phase at equal GPUs, and what does not fit."""
    out = []
    for w in c.worlds:
        for point, what in (("decode-capacity", "decode"), ("prefill-capacity", "prefill")):
            rows = [x for x in _pick(c, point, w["key"]) if x["scale"] == "equal-gpus"]
            fit = [x for x in rows if x["fits"]]
            seed = next((x for x in rows if x["design"] == "seed"), None)
            if not fit:
                out.append(f"`{w['key']}`, {what}: no design fits memory.")
                continue
            best = max(fit, key=lambda x: x["tokens_per_s"])
            text = (f"`{w['key']}`, {what} (context {c.config.context}, each at the largest batch that fits, "
                    f"{best['gpus']:,} GPUs): best is {best['label']} at {f_sig(best['tokens_per_s_per_gpu'])} "
                    f"tokens/s/GPU, {f_ms(best['latency_ms'])} ms")
            if seed and seed is not best:
                ratio = seed["tokens_per_s"] / best["tokens_per_s"]
                text += (f"; the seed design reaches {ratio:.2f}x of it ({f_sig(seed['tokens_per_s_per_gpu'])} "
                         f"tokens/s/GPU, {f_ms(seed['latency_ms'])} ms)")
            out.append(text + ".")
        out += _instance_and_floor(c, w["key"])
        nofit = sorted({x["label"] for x in c.rows if x["world"] == w["key"] and x["point"] == "decode-capacity"
                        and not x["fits"]})
        if nofit:
            out.append(f"`{w['key']}`: does not fit even one sequence of {c.config.context} tokens: "
                       + ", ".join(nofit) + ".")
    return out


def _instance_and_floor(c: Comparison, world: str) -> list[str]:
    """One model instance of each (the seed's is all the GPUs), and the decode latency floor."""
    out = []
    inst = [x for x in _pick(c, "decode-capacity", world) if x["scale"] == "one-instance" and x["fits"]]
    seed = next((x for x in inst if x["design"] == "seed"), None)
    base = [x for x in inst if x["design"] != "seed"]
    if seed and base:
        best = max(base, key=lambda x: x["tokens_per_s"])
        out.append(f"`{world}`, one model instance each, decode at capacity: the seed design on {seed['gpus']:,} GPUs "
                   f"holds {seed['max_batch']:,} sequences and makes {f_int(seed['tokens_per_s'])} tokens/s; "
                   f"{best['label']} on {best['gpus']:,} GPUs holds {best['max_batch']:,} and makes "
                   f"{f_int(best['tokens_per_s'])} ({seed['tokens_per_s'] / best['tokens_per_s']:.0f}x the tokens/s "
                   f"on {seed['gpus'] / best['gpus']:.0f}x the GPUs).")
    floor = [x for x in _pick(c, "decode-batch", world) if x["batch"] == 1 and x["scale"] == "equal-gpus"]
    seed1 = next((x for x in floor if x["design"] == "seed"), None)
    fit1 = [x for x in floor if x["design"] != "seed" and x["fits"]]
    if seed1 and fit1:
        best1 = min(fit1, key=lambda x: x["latency_ms"])
        out.append(f"`{world}`, decode latency floor (batch 1): the seed design {f_ms(seed1['latency_ms'])} ms per "
                   f"token, {best1['label']} {f_ms(best1['latency_ms'])} ms.")
    return out


def inputs(c: Comparison) -> list[Block]:
    cfg = c.config
    m = c.model
    blocks: list[Block] = [("h2", "Inputs"), (
        "p", f"Model `{m['name']}`: {m['num_layers']} layers ({len(m['dense_layers'])} dense), "
             f"{m['num_experts']} experts per MoE layer, top-{m['top_k']}, hidden {m['hidden']}, expert hidden "
             f"{m['expert_hidden']}, {m['num_heads']} heads x {m['head_dim']} ({m['num_kv_heads'] or m['num_heads']} "
             f"KV heads), {m['dtype']}. Routing statistics: "
             + ", ".join(f"{k} {v}" for k, v in sorted(c.stats.items())) + ".")]
    keys = ("bf16_tflops", "peak_bf16_tflops", "hbm_tbps", "memory_gb", "nvlink_gbps", "nvlink_latency_us",
            "nic_gbps_per_gpu", "network_latency_us", "transfer_floor_us", "kernel_overhead_us")
    rows = [[k] + [f"{w['profile'].get(k)}" for w in c.worlds] for k in keys]
    rows.append(["expert curve points"] + [str(len(w["profile"]["expert_curve"])) for w in c.worlds])
    rows.append(["cluster"] + [w["cluster"] for w in c.worlds])
    rows.append([f"fabric ({c.designs[0]['label']})"] + [w["fabric"] for w in c.worlds])
    rows.append(["source"] + [w["source"] for w in c.worlds])
    blocks.append(("h3", "Hardware profiles (achievable rates; GB/s are bytes)"))
    blocks.append(("table", ["field"] + [f"`{w['key']}`" for w in c.worlds], rows, ()))
    der = [f"`{w['key']}` {k}: {v}" for w in c.worlds for k, v in w["profile"]["derivation"].items()]
    if der:
        blocks.append(("ul", der))
    blocks.append(("h3", "Placements (each solved once, evaluated on every world)"))
    prow = []
    for e, rec in c.placements.items():
        name = next((d["label"] for d in c.designs if str(d["experts_per_gpu"]) == e), e)
        prow.append([name, rec["source"], rec["solver"], f_int(rec["objective"]), f_int(rec["bound"]),
                     f_pct(rec["gap"]), rec["stop_reason"]])
    blocks.append(("table", ["design", "from", "solver", "objective", "bound", "gap", "stopped"], prow, (3, 4, 5)))
    o = cfg.options
    blocks.append(("h3", "Workload and cost-model options"))
    blocks.append(("ul", [
        (f"decode: context {cfg.context}; batches {', '.join(map(str, cfg.decode_batches))} and each design's "
        "capacity (the largest batch that fits memory)"),
        (f"prefill: {cfg.prefill_batch} prompts of {', '.join(map(str, cfg.prompts))} tokens, and capacity at "
        f"{cfg.context}"),
        ("batch = sequences in flight on the deployment: at equal GPUs spread over the replicas that fill the "
        "cluster, at one instance all on one instance"),
        f"options: {', '.join(f'{k}={v}' for k, v in o.as_dict().items())}",
        ("method: docs/cost-model.md (roofline compute, per-tier transfers with node dedup, NIC sharing, routed "
        "link loads, pipeline and overlap per flow model, memory per GPU)"),
    ]))
    return blocks


def build(c: Comparison, *, with_plots: bool = True) -> list[Block]:
    from moeplace.report import summary

    cfg = c.config
    names = ", ".join(f"`{w['key']}`" for w in c.worlds)
    seed = next((d["label"] for d in c.designs if d["key"] == "seed"), "the seed design")
    blocks: list[Block] = [
        ("h1", "Expert per GPU against 4-8 experts per GPU"),
        ("p", (f"Seed design: {seed}. Hardware profiles: {names}. Every number is the cost model's prediction "
              "from the inputs listed at the end; a row whose memory does not fit is computed anyway and marked.")),
    ]
    blocks += summary.blocks(c) if with_plots else [b for b in summary.blocks(c) if b[0] != "plot"]
    blocks += [("nav",), ("h2", "Verdict in words"), ("ul", verdict(c))]
    emph = seed
    for w in c.worlds:
        k = w["key"]
        blocks += [("h2", f"Hardware `{k}`"), ("p", w["source"]),
                   ("h3", f"`{k}`: decode at capacity, context {cfg.context}"), _table(_pick(c, "decode-capacity", k)),
                   ("h3", f"`{k}`: prefill at capacity, prompts of {cfg.context} tokens"),
                   _table(_pick(c, "prefill-capacity", k)),
                   ("h3", f"`{k}`: decode, batch 1 (the latency floor)"),
                   _table([x for x in _pick(c, "decode-batch", k) if x["batch"] == 1])]
        if with_plots:
            blocks += plots.world_plots(c, k, emph)
    if with_plots:
        blocks += plots.shared_plots(c)
    for sw in c.sweeps:
        rows = sorted(sw["rows"], key=lambda x: ([w["key"] for w in c.worlds].index(x["world"]), x["sweep_value"]))
        blocks += [("h2", f"Sweep: {sw['key']} = {', '.join(map(str, sw['values']))}"),
                   ("p", _sweep_note(sw["key"], cfg)),
                   ("table", ["hardware", sw["key"]] + COLUMNS,
                    [[f"`{x['world']}`", str(x["sweep_value"])] + _row(x) for x in rows],
                    (1,) + tuple(i + 2 for i in RIGHT))]
        if with_plots:
            blocks += plots.sweep_plots(c, sw, emph)
    blocks.append(("h2", "Details"))
    for w in c.worlds:
        k = w["key"]
        blocks += [("h3", f"`{k}`: decode by batch, context {cfg.context}"), _table(_pick(c, "decode-batch", k)),
                   ("h3", f"`{k}`: prefill, {cfg.prefill_batch} prompts, by prompt length"),
                   _table(sorted(_pick(c, "prefill", k), key=lambda x: x["seq_len"]), ("prompt tokens", "seq_len"))]
    blocks += inputs(c)
    blocks += [("h2", "The seed's claims"),
               ("p", ("Judged on the seed design at equal GPU count, decode and prefill each at capacity (the "
                     "largest batch that fits memory); a claim is checked in each regime separately, with the "
                     "thresholds given beside the numbers (method: docs/cost-model.md).")),
               ("table", ["claim", "hardware", "decode", "prefill", "the numbers"],
                [[cl["claim"], f"`{cl['world']}`"]
                 + [summary.verdict_word((cl.get("regimes") or {}).get(r)) for r in summary.REGIMES]
                 + [cl["number"]] for cl in c.claims], ())]
    return blocks


def _sweep_note(key: str, cfg) -> str:
    base = {"batch": f"decode at context {cfg.context}",
            "experts-per-gpu": f"decode, batch {cfg.batch}, context {cfg.context} (1 = the seed's expert per GPU)",
            "context": f"decode, batch {cfg.batch}", "prompt": f"prefill, {cfg.prefill_batch} prompts"}[key]
    return f"{base}; equal GPUs."
