"""The report's first screen: one headline chart and the claims table, verdicts per regime.

Headline: for each hardware profile, the seed design against the best 4-8-experts-per-GPU baseline that fits
memory, decode and prefill each at capacity (the largest batch that fits) at equal GPU count: tokens/s per
GPU and latency. Claims: each of the seed's claims judged in decode and in prefill, one verdict per cell,
"holds" or "fails" (coloured in report.html; the word is always there).
"""

from __future__ import annotations

from moeplace.report import svg
from moeplace.report.compare import Comparison

HOLDS, FAILS, NONE = "holds", "fails", "n/a"
REGIMES = ("decode", "prefill")


def _capacity(c: Comparison, world: str, regime: str) -> tuple[dict | None, dict | None]:
    """The seed's row and the best fitting baseline's row (by tokens/s), equal GPUs, at capacity."""
    rows = [x for x in c.rows if x["point"] == f"{regime}-capacity" and x["world"] == world
            and x["scale"] == "equal-gpus"]
    seed = next((x for x in rows if x["design"] == "seed"), None)
    base = [x for x in rows if x["design"] != "seed" and x["fits"]]
    return seed, max(base, key=lambda x: x["tokens_per_s"]) if base else None


def headline(c: Comparison) -> tuple:
    worlds = [w["key"] for w in c.worlds]
    picks = {(w, r): _capacity(c, w, r) for w in worlds for r in REGIMES}

    def vals(regime: str, key: str) -> list[list[float | None]]:
        out = []
        for w in worlds:
            seed, base = picks[(w, regime)]
            out.append([None if x is None or not x["fits"] else x[key] for x in (seed, base)])
        return out

    names = ["seed: one expert per GPU", "best baseline, 4-8 experts per GPU"]
    panels = [
        {"title": "decode throughput", "unit": "tokens/s per GPU", "better": "higher",
         "values": vals("decode", "tokens_per_s_per_gpu")},
        {"title": "decode latency", "unit": "ms per token", "better": "lower", "values": vals("decode", "latency_ms")},
        {"title": "prefill throughput", "unit": "tokens/s per GPU", "better": "higher",
         "values": vals("prefill", "tokens_per_s_per_gpu")},
        {"title": "prefill latency", "unit": "ms per batch", "better": "lower",
         "values": vals("prefill", "latency_ms")},
    ]
    panels[0].update(categories=worlds, series=names)
    chart = svg.panel_bars(f"Seed design against the 4-8-experts-per-GPU baseline, equal GPUs, each at capacity "
                           f"(context {c.config.context})", panels)
    which = []
    for w in worlds:
        for r in REGIMES:
            seed, base = picks[(w, r)]
            if base is not None and seed is not None:
                which.append(f"{w} {r}: {base['label']}, batch {base['batch']:,} (seed batch {seed['batch']:,})")
    caption = ("rows: hardware profiles; the baseline is the fastest 4-8-experts-per-GPU design that fits memory: "
               + "; ".join(which))
    return ("plot", chart, caption)


def verdict_word(ok: bool | None) -> str:
    return NONE if ok is None else (HOLDS if ok else FAILS)


def claims_table(c: Comparison) -> tuple:
    worlds = [w["key"] for w in c.worlds]
    claims = list(dict.fromkeys(cl["claim"] for cl in c.claims))
    by = {(cl["claim"], cl["world"]): cl for cl in c.claims}
    cols = ["claim of the seed design"] + [f"{w}: {r}" for w in worlds for r in REGIMES]
    rows = []
    for name in claims:
        row = [name]
        for w in worlds:
            cl = by.get((name, w))
            regimes = (cl or {}).get("regimes") or {}
            row += [verdict_word(regimes.get(r)) for r in REGIMES]
        rows.append(row)
    return ("table", cols, rows, ())


def blocks(c: Comparison) -> list[tuple]:
    held = sum(1 for cl in c.claims for v in (cl.get("regimes") or {}).values() if v)
    total = sum(1 for cl in c.claims for v in (cl.get("regimes") or {}).values() if v is not None)
    return [
        ("open", "top-summary"), ("h2", "Summary"), headline(c),
        ("p", f"The seed design's claims, judged at equal GPU count in each regime at capacity: {held} of {total} "
              "checks hold. Thresholds and the numbers behind each verdict: section \"The seed's claims\" below."),
        claims_table(c), ("close",),
    ]
