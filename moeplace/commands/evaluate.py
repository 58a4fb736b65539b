"""`moeplace evaluate`: metrics of a plan on statistics or on a per-token trace."""

from __future__ import annotations

import click

from moeplace.api import evaluate as evaluate_plan
from moeplace.console import Console, fmt_bytes


@click.command()
@click.argument("plan_path", metavar="PLAN", type=click.Path(dir_okay=True))
@click.option("--stats", "stats_path", metavar="FILE", default=None, help="routing statistics .npz to score on")
@click.option("--trace", "trace_path", metavar="FILE", default=None,
              help="per-token trace .npz/.npy with `topk` [tokens, moe_layers, k] to score on")
@click.option("--json", "as_json", is_flag=True, help="print the metrics as JSON")
def evaluate(plan_path: str, stats_path: str | None, trace_path: str | None, as_json: bool) -> None:
    """Score PLAN (a plan.json or its directory) on routing statistics or a trace.

    Without --stats or --trace the plan's own statistics are used (regenerated when synthetic).
    Held-out scoring: plan on one workload, evaluate on another.

    \b
    Examples:
      moeplace evaluate plan/plan.json
      moeplace evaluate plan/ --trace held_out.npz --json
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
