"""`moeplace evaluate`: metrics of a plan on statistics or on a per-token trace."""

from __future__ import annotations

import click

from moeplace.api import evaluate as evaluate_plan
from moeplace.commands.options import STATS_FORMATS
from moeplace.console import Console, fmt_bytes


@click.command()
@click.argument("plan_path", metavar="PLAN", type=click.Path(dir_okay=True))
@click.option("--stats", "stats_path", metavar="FILE", default=None, help=f"score on these statistics: {STATS_FORMATS}")
@click.option("--trace", "trace_path", metavar="FILE", default=None,
              help="score on a per-token trace (same formats as --stats; the output calls it a trace)")
@click.option("--json", "as_json", is_flag=True, help="print the metrics as JSON")
def evaluate(plan_path: str, stats_path: str | None, trace_path: str | None, as_json: bool) -> None:
    """Score PLAN (a plan.json or its directory) on routing statistics or a trace.

    Without --stats or --trace the plan's own statistics are used (regenerated when synthetic).
    Held-out scoring: plan on one workload, evaluate on another. The baselines `solve` compares with
    (layer-major, round-robin, random) are scored on the same statistics beside the plan.

    \b
    Examples:
      moeplace evaluate plan/plan.json
      moeplace evaluate plan/ --trace held_out.npz --json
      moeplace evaluate plan/ --trace today.jsonl
    """
    result = evaluate_plan(plan_path, stats=stats_path, trace=trace_path)
    if as_json:
        Console().json(result)
        return
    console = Console()
    m = result["metrics"]
    console.line(f"{result['plan']}: {result['model']} on {result['gpus']:,} GPUs, flow {m['flow']}, scored on "
                 f"{result['scored_on']} ({m['num_tokens']:,} tokens)")

    def share(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.4f}"

    rows = [
        ("pair_cross_node_share", share(m["pair_cross_node_share"])),
        ("pair_cross_gpu_share", share(m["pair_cross_gpu_share"])),
        ("coact_cross_node_share", share(m["coact_cross_node_share"])),
        ("nodes_touched", "n/a" if m["nodes_touched"] is None else f"{m['nodes_touched']:.3f}"),
        (f"{m['flow']}_cross_node_bytes_per_token", fmt_bytes(m["cross_node_bytes_per_token"])),
        ("objective (tier-weighted B/token)", fmt_bytes(m["objective"])),
    ]
    rows += [(f"bytes_per_token[{k}]", fmt_bytes(v)) for k, v in m["bytes_per_token_by_tier"].items()]
    console.table(None, ["metric", "value"], rows, right=(1,))
    rows = [("plan", fmt_bytes(m["objective"]), fmt_bytes(m["cross_node_bytes_per_token"]), "")]
    for name, b in result["baselines"].items():
        rel = (m["objective"] / b["objective"] - 1.0) * 100 if b["objective"] else 0.0
        rows.append((name, fmt_bytes(b["objective"]), fmt_bytes(b["cross_node_bytes_per_token"]), f"{rel:+.1f}%"))
    console.table(None, ["placement", "objective", "cross-node B/token", "plan vs it"], rows, right=(1, 2, 3))
