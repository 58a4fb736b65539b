"""The markdown report of benchmarks/solver_quality.py: one table per instance and a summary against peers.

`render(report)` turns the benchmark's JSON (see docs/peers.md) into markdown; it is also what
`python benchmarks/solver_quality.py --render FILE.json` prints for a finished or partial run.
"""

from __future__ import annotations

import statistics

def _fmt(x: float | None, spec: str = ",.0f") -> str:
    return "" if x is None else format(x, spec)


def render(report: dict) -> str:
    lines = [f"# Solver quality ({report['mode']} run)", "",
             f"{report['date']} · {report['machine']} · `{report['command']}`", "",
             "Held-out: plans are made on one sample of tokens and scored on another (see the script's "
             "docstring). Bytes are per token through the model; the objective is in leaf-byte equivalents. "
             "gap = (plan objective - best proven bound) / plan objective, on the planning statistics.", ""]
    for inst in report["instances"]:
        scored = [r for r in inst["rows"] if "gap" in r and not r["method"].startswith("classic")]
        best = min(scored, key=lambda r: r["plan_objective"]) if scored else None
        best_line = (f"Best plan objective {best['plan_objective']:,.0f} ({best['method']}): gap "
                     f"{best['gap']:.1%} to the best bound." if best else "No plan.")
        lines += [f"## {inst['instance']}", "",
                  f"{inst['items']:,} items on {inst['nodes']} nodes ({inst['gpus']} GPUs); {inst['fabric']}; "
                  f"{inst['hyperedges_plan']:,} hyperedges planned, {inst['hyperedges_held_out']:,} held out; "
                  f"best bound {inst['best_bound']:,.0f} ({inst['best_bound_from']}); solver time limit "
                  f"{inst['time_limit_s']:.0f} s. {best_line}", "",
                  "| method | held-out cross-node B/token | held-out objective | plan objective | bound | gap | wall s | note |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in inst["rows"]:
            note = (r.get("error") or r.get("skipped") or "")[:160]
            if r.get("gpus"):
                note = f"{r['gpus']} GPUs, own bound {r.get('own_bound', 0):,.0f}" + (f"; {note}" if note else "")
            if r.get("peak_rss_mb", 0) >= 1024:
                note = f"peak {r['peak_rss_mb'] / 1024:.1f} GB" + (f"; {note}" if note else "")
            if r.get("status"):
                note = f"{r['status']}, {r.get('stop_reason', '')}" + (f"; {note}" if note else "")
            lines.append(f"| {r['method']} | {_fmt(r.get('held_cross_node'))} | {_fmt(r.get('held_objective'))} | "
                         f"{_fmt(r.get('plan_objective'))} | {_fmt(r.get('bound'))} | "
                         f"{_fmt(r.get('gap'), '.1%')} | {_fmt(r.get('wall_s'), '.1f')} | {note} |")
        lines.append("")
    lines += render_gaps(report)
    lines += render_summary(report)
    return "\n".join(lines) + "\n"


def _ratio(a: dict, b: dict | None, key: str) -> float | None:
    if b is None or key not in a or key not in b or b[key] <= 0:
        return None
    return a[key] / b[key] - 1.0


def render_summary(report: dict) -> list[str]:
    """Each solver against the peers: medians per family of the held-out change (negative = better)."""
    peers_of = {"Mt-KaHyPar": ("mtkahypar", "mtkahypar-steiner"), "KaHIP": ("kahip", "kahip-dedup"),
                "layer-major": ("layer-major",)}
    lines = ["## Summary: solvers against the best peer of each kind (held-out, median over instances)", "",
             "| family | solver | instances | vs best peer (cross) | worse than best peer on | vs Mt-KaHyPar (cross) "
             "| vs KaHIP (cross) | vs layer-major (cross) | vs Mt-KaHyPar (objective) | vs KaHIP (objective) "
             "| median gap |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    families = sorted({i["family"] for i in report["instances"]})
    solvers = sorted({r["method"] for i in report["instances"] for r in i["rows"] if r["kind"] == "solver"})
    for fam in families:
        for s in solvers:
            acc: dict[str, list[float]] = {k: [] for k in ("best", "mtk", "kahip", "lm", "mtk_o", "kahip_o", "gap")}
            worse, n = 0, 0
            for inst in (i for i in report["instances"] if i["family"] == fam):
                rows = {r["method"]: r for r in inst["rows"] if "held_cross_node" in r}
                if s not in rows:
                    continue
                n += 1
                me = rows[s]
                peer_rows = [r for m, r in rows.items() if r["kind"] == "peer" and not m.startswith("classic")]

                def best(names, key):
                    cands = [rows[m] for m in names if m in rows]
                    return min(cands, key=lambda r: r[key]) if cands else None
                bp = min(peer_rows, key=lambda r: r["held_cross_node"]) if peer_rows else None
                if bp is not None and me["held_cross_node"] > bp["held_cross_node"] * (1 + 1e-9):
                    worse += 1
                for key, ref, field in (("best", bp, "held_cross_node"),
                                        ("mtk", best(peers_of["Mt-KaHyPar"], "held_cross_node"), "held_cross_node"),
                                        ("kahip", best(peers_of["KaHIP"], "held_cross_node"), "held_cross_node"),
                                        ("lm", best(peers_of["layer-major"], "held_cross_node"), "held_cross_node"),
                                        ("mtk_o", best(peers_of["Mt-KaHyPar"], "held_objective"), "held_objective"),
                                        ("kahip_o", best(peers_of["KaHIP"], "held_objective"), "held_objective")):
                    v = _ratio(me, ref, field)
                    if v is not None:
                        acc[key].append(v)
                acc["gap"].append(me.get("gap", 0.0))
            if not n:
                continue
            med = {k: (statistics.median(v) if v else None) for k, v in acc.items()}
            lines.append(f"| {fam} | {s} | {n} | {_fmt(med['best'], '+.1%')} | {worse} | {_fmt(med['mtk'], '+.1%')} | "
                         f"{_fmt(med['kahip'], '+.1%')} | {_fmt(med['lm'], '+.1%')} | {_fmt(med['mtk_o'], '+.1%')} | "
                         f"{_fmt(med['kahip_o'], '+.1%')} | {_fmt(med['gap'], '.1%')} |")
    return lines + [""]


def render_gaps(report: dict) -> list[str]:
    """One row per instance: plan objective of each peer and of lns, the best bound and lns's gap to it."""
    cols = [("layer-major", ("layer-major",)), ("KaHIP", ("kahip", "kahip-dedup")),
            ("Mt-KaHyPar", ("mtkahypar", "mtkahypar-steiner"))]
    lines = ["## Gaps to the best bound (plan objective on the planning statistics)", "",
             "| instance | layer-major | KaHIP | Mt-KaHyPar | lns | best bound (method) | lns gap | lns CPU s "
             "| bound CPU s |", "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for inst in report["instances"]:
        rows = {r["method"]: r for r in inst["rows"] if "plan_objective" in r}

        def best(names):
            vals = [rows[m]["plan_objective"] for m in names if m in rows]
            return min(vals) if vals else None
        lns = rows.get("lns", {})
        lines.append(f"| {inst['instance']} | " + " | ".join(_fmt(best(n)) for _, n in cols) +
                     f" | {_fmt(lns.get('plan_objective'))} | {inst['best_bound']:,.0f} ({inst['best_bound_from']}) | "
                     f"{_fmt(lns.get('gap'), '.1%')} | {_fmt(lns.get('cpu_s'), '.1f')} | "
                     f"{_fmt(inst.get('node_bound_cpu_s'), '.1f')} |")
    return lines + [""]


if __name__ == "__main__":
    print("solver_quality_report.py is the report module of benchmarks/solver_quality.py: run "
          "python benchmarks/solver_quality.py --render FILE.json (or --help)")
