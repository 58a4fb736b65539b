"""Plain rows and lines for the `moeplace stats` commands (the console prints them; nothing here prints)."""

from __future__ import annotations

import math

import numpy as np

from moeplace.traces.diff import Diff
from moeplace.traces.measures import Measures
from moeplace.traces.stats import RoutingStats


def _f(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _pct(a: float, b: float) -> str:
    if a is None or b is None or math.isnan(a) or math.isnan(b) or a == 0:
        return "n/a"
    return f"{(b / a - 1) * 100:+.1f}%"


def dropped_line(s: RoutingStats) -> str:
    rec = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in s.dropped_records.items()) or "none"
    partial = int(s.trans_dropped_L1.sum())
    return (f"dropped records: {rec}; transitions left out (token missing at one of the two layers): "
            f"{partial:,}")


def not_measured_line(s: RoutingStats) -> str | None:
    """What a count-only input did not measure, in words (None when co-activation and transitions were)."""
    missing = [w for part, w in (("coact", "co-activation"), ("trans", "layer-to-layer traffic"))
               if part not in s.measured]
    if not missing:
        return None
    return (f"{' and '.join(missing)} {'were' if len(missing) > 1 else 'was'} not measured "
            f"({', '.join(s.measured)} only); planning assumes experts are chosen independently")


def load_records(prov: dict) -> int | None:
    """The per-layer count records a count-only reader read (summed over merged parts), or None."""
    ns = [q.get("load_records") for q in prov.get("parts", [prov])]
    return sum(ns) if ns and all(isinstance(n, int) and not isinstance(n, bool) for n in ns) else None


def build_summary(s: RoutingStats, out: str, wall_s: float) -> dict:
    loads = None if s.has("paths") else load_records(s.provenance)
    records = (int(s.tokens_L.sum()) if loads is None and (s.has("paths") or s.provenance.get("source") == "trace")
               else None)
    rate = records / wall_s if records and wall_s > 0 else None
    if loads is not None:
        read = (f"; {loads:,} load records (one layer's expert counts each) in {wall_s:.2f} s"
                + (f" ({loads / wall_s:,.0f} load records/s)" if wall_s > 0 else ""))
    else:
        read = (f"; {records:,} (token, layer) records in {wall_s:.2f} s ({rate:,.0f} records/s)" if rate else
                f"; {wall_s:.2f} s")
    lines = [f"{s.num_tokens:,} tokens, {s.num_moe_layers} layers ({_layers(s)}), {s.num_experts} experts, "
             f"top-{s.top_k}; measured: {', '.join(s.measured)}",
             dropped_line(s),
             f"path sample: {0 if s.paths_TLK is None else s.paths_TLK.shape[0]:,} tokens" + read,
             f"wrote {out}"]
    if not_measured_line(s):
        lines.insert(1, not_measured_line(s))
    return {"out": out, "num_tokens": s.num_tokens, "layers": list(s.layer_numbers), "num_experts": s.num_experts,
            "top_k": s.top_k, "measured": list(s.measured), "dropped_records": s.dropped_records,
            "trans_dropped": s.trans_dropped_L1.tolist(), "records": records, "load_records": loads,
            "wall_time_s": round(wall_s, 3),
            "records_per_s": rate, "lines": lines}


def _layers(s: RoutingStats) -> str:
    n = s.layer_numbers
    if len(n) > 2 and list(n) == list(range(n[0], n[-1] + 1)):
        return f"{n[0]}..{n[-1]}"
    return ", ".join(map(str, n))


def show_lines(s: RoutingStats, m: Measures, source: str) -> list[str]:
    prov = s.provenance
    what = prov.get("format") or prov.get("source", "statistics")
    lines = [f"{source}: {what}, {s.num_tokens:,} tokens, {s.num_moe_layers} layers ({_layers(s)}) x "
             f"{s.num_experts} experts, top-{s.top_k}",
             f"measured: {', '.join(s.measured)}"
             + ("; transitions pair choices by rank (r-th with r-th)" if s.trans_pairing == "rank" else "")
             + (f"; path sample {s.paths_TLK.shape[0]:,} tokens" if s.has("paths") else "; no path sample")]
    if not_measured_line(s):
        lines.append(not_measured_line(s))
    if s.dropped_records or s.trans_dropped_L1.any():
        lines.append(dropped_line(s))
    return lines


def show_rows(s: RoutingStats, m: Measures) -> tuple[list[str], list[tuple]]:
    header = ["layer", "tokens", "max/mean", "entropy", "skew (CV)", "coact share", "coact lift",
              "affinity share", "affinity lift"]
    rows = []
    for li, layer in enumerate(s.layer_numbers):
        nxt = li < s.num_moe_layers - 1
        rows.append((layer, f"{int(s.tokens_L[li]):,}", _f(m.load_max_over_mean[li], 2), _f(m.load_entropy[li], 4),
                     _f(m.load_cv[li]), _f(m.coact_share[li]), _f(m.coact_lift[li]),
                     _f(m.affinity_share[li]) if nxt else "", _f(m.affinity_lift[li]) if nxt else ""))
    return header, rows


def summary_lines(m: Measures) -> list[str]:
    s = m.summary()
    return [f"mean over layers: skew (load CV) {_f(s['load_cv'])}, max/mean {_f(s['load_max_over_mean'], 2)}, "
            f"entropy {_f(s['load_entropy'], 4)}",
            f"co-activation lift {_f(s['coact_lift'])}, affinity lift {_f(s['affinity_lift'])} "
            f"(lifts: {m.lift_method})"]


def diff_lines(d: Diff, a: str, b: str) -> tuple[list[str], list[tuple], list[str]]:
    header, rows = [], []
    if d.same_shape:
        header = ["layer", "load TV", "(chance)"]
        cols = [("load_tv", "load_tv_noise")]
        if "coact_tv" in d.per_layer:
            header += ["coact TV", "(chance)"]
            cols.append(("coact_tv", "coact_tv_noise"))
        has_t = "trans_tv" in d.per_transition
        if has_t:
            header += ["trans TV (to next)", "(chance)"]
        for li, layer in enumerate(d.layer_numbers):
            row = [layer]
            for val, noise in cols:
                row += [_f(d.per_layer[val][li]), _f(d.per_layer[noise][li])]
            if has_t:
                last = li >= len(d.per_transition["trans_tv"])
                row += ["", ""] if last else [_f(d.per_transition["trans_tv"][li]),
                                              _f(d.per_transition["trans_tv_noise"][li])]
            rows.append(tuple(row))
    lines = []
    s = d.summary()
    if d.same_shape:
        parts = [f"{k.replace('_mean', '')} mean {_f(v)}" for k, v in s.items() if k.endswith("_mean")
                 and "noise" not in k]
        lines.append("distances (total variation, 0 = same, 1 = disjoint): " + "; ".join(parts))
    else:
        lines.append("different shapes: no per-layer distances; measures compared below")
    ma, mb = d.measures_a.summary(), d.measures_b.summary()
    lines.append(f"{'measure (mean over layers)':<28} {'A':>9} {'B':>9} {'B vs A':>8}")
    for k in ("load_cv", "load_max_over_mean", "load_entropy", "coact_lift", "affinity_lift", "coact_share",
              "affinity_share"):
        lines.append(f"{k:<28} {_f(ma[k]):>9} {_f(mb[k]):>9} {_pct(ma[k], mb[k]):>8}")
    lines.append(f"A = {a}; B = {b}")
    return header, rows, lines


def synth_lines(profile, model: str, report, m: Measures, out: str) -> list[str]:
    src, syn = profile.summary, m.summary()
    lines = [f"fitted {profile.name} ({profile.num_layers} x {profile.num_experts}, top-{profile.top_k}, "
             f"{profile.num_tokens:,} tokens) to {model} ({len(m.layer_numbers)} layers) in {report.rounds} rounds; "
             f"worst per-layer error {report.worst_relative_error * 100:.1f}%",
             f"{'measure (mean over layers)':<28} {'source':>9} {'synthetic':>9} {'diff':>8}"]
    for k in ("load_cv", "coact_lift", "affinity_lift", "load_max_over_mean", "load_entropy", "coact_share",
              "affinity_share"):
        a = src.get(k)
        lines.append(f"{k:<28} {_f(a):>9} {_f(syn[k]):>9} {_pct(a, syn[k]) if a is not None else 'n/a':>8}")
    lines.append("fitted: load_cv (skew), coact_lift, affinity_lift; shares and max/mean depend on the expert "
                 "count and top-k and are not expected to match")
    knobs = report.knobs
    lines.append("knobs: skew " + _range(knobs["skew"]) + ", coact " + _range(knobs["coact"]) + ", affinity "
                 + _range(knobs["affinity"]))
    lines.append(f"wrote {out}")
    return lines


def _range(v: list[float]) -> str:
    a = np.asarray(v, float)
    return f"{a.min():.3f}" if a.size == 1 or np.ptp(a) < 1e-9 else f"{a.min():.3f}..{a.max():.3f}"
