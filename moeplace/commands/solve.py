"""`moeplace solve`: plan the placement and write `plan.json`."""

from __future__ import annotations

from pathlib import Path

import click

from moeplace import interrupts
from moeplace.api import plan_request, solve_request
from moeplace.commands.emit import print_launch
from moeplace.commands.options import (
    cluster_option,
    Finite,
    cluster_overrides,
    dedup_option,
    flow_option,
    model_option,
    parse_pairs,
    seed_option,
    stats_option,
    synth_option,
    tier_cost_option,
    topology_option,
)
from moeplace.console import Console, fmt_bytes
from moeplace.fileio import atomic_dir
from moeplace.planner import DEFAULT_SOLVER

SYNTH_KNOBS = {"skew": float, "coact": float, "affinity": float, "cluster_size": int, "num_tokens": int}
TIER_NAMES = {"nvlink": float, "leaf": float, "pod": float, "core": float}


@click.command()
@model_option
@cluster_option
@topology_option
@stats_option
@flow_option
@dedup_option
@click.option("--solver", default=DEFAULT_SOLVER, show_default=True, help="solver backend (see `moeplace solvers`)")
@click.option("--time-limit", "time_limit_s", default=None, type=Finite(0.1, 1e7),
              help="wall-clock limit, seconds: for lns and greedy a safety net (a search stopped by it gives a "
                   "plan that depends on the machine's speed; plan.json says so), for the exact backends their "
                   "budget [default: 600 for lns and greedy, 60 for the exact backends]")
@click.option("--work-limit", type=Finite(1, 1e15), default=None,
              help="deterministic work budget (exact move evaluations; a window counts 60): same inputs and "
                   "seed, same plan on any machine; more work continues the same search [default: the "
                   "solver's own, 40 per expert for lns]")
@seed_option
@click.option("--strong-bound", "strong_bound_s", type=Finite(0, 1e6), default=0.0, show_default=True,
              metavar="SECONDS", help="spend this many more seconds on the bound: more rounds of the node "
                                      "LP, then the LP window bound (0: the default 2 node-LP rounds only)")
@click.option("--balance-per-layer", is_flag=True, help="keep every GPU's count of each layer's experts balanced")
@cluster_overrides
@tier_cost_option
@synth_option
@click.option("--replicas", type=click.IntRange(min=0), default=0, show_default=True,
              help="extra copies of the hottest experts, placed on spare GPUs (one expert per GPU)")
@click.option("--redundant-experts", "redundant_experts", metavar="R|auto", default=None,
              help="EP layout with R redundant expert slots per layer ((E + R) a multiple of the GPUs; needs --flow "
                   "ep; auto: picked by the busiest GPU's load); see docs/engines.md")
@click.option("--phase", type=click.Choice(["prefill", "decode"]), default=None,
              help="with --redundant-experts: the serving phase the statistics and the time model are for")
@click.option("--from", "replan_from", metavar="PLAN", default=None,
              help="re-plan: start from this plan (plan.json or its directory) and move few experts")
@click.option("--max-moves", type=click.IntRange(min=0), default=None, help="re-plan: move at most N experts")
@click.option("--move-cost", type=Finite(0, 1e15), default=0.0, show_default=True,
              help="re-plan: cost of moving one expert, in objective units (B/token leaf-equivalents)")
@click.option("--out", "out_dir", default="plan", show_default=True, type=click.Path(file_okay=False),
              help="output directory")
@click.option("--force", is_flag=True, help="replace an existing output directory")
@click.option("--no-emit", is_flag=True, help="write only plan.json and run.json, not the launch files")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.option("-q", "--quiet", is_flag=True, help="print nothing but errors")
def solve(model_ref, cluster_ref, topology, stats_ref, flow, dedup, solver, time_limit_s, work_limit, seed,
          strong_bound_s, balance_per_layer, nodes, gpus_per_node, experts_per_gpu, hosts, node_name_map, tier_costs,
          synth, replicas,
          redundant_experts, phase, replan_from, max_moves, move_cost, out_dir, force,
          no_emit, as_json, quiet) -> None:
    """Place every expert on a GPU and write PLAN_DIR/plan.json and its launch files (see `moeplace emit`).

    With no options: the seed model (58 MoE layers x 32 experts, top-2) on the seed cluster (232 nodes x 8
    GPUs, fat-tree), synthetic routing statistics from seed 0, chain flow with node dedup.

    \b
    Examples:
      moeplace solve --topology fat-tree --out plan/
      moeplace solve --model mixtral-8x7b --nodes 4 --gpus-per-node 8 --experts-per-gpu 1 --out mixtral/
      moeplace solve --model flame.toml --nodes 64 --stats trace.npz --out flame/
      moeplace solve --flow ep --synth affinity=0.9 --time-limit 30 --out plan-ep/ --force
      moeplace solve --from plan/ --stats today.npz --max-moves 64 --out plan-today/
    """
    console = Console(quiet=quiet or as_json)
    req = plan_request(model=model_ref, cluster=cluster_ref, nodes=nodes, gpus_per_node=gpus_per_node,
                       experts_per_gpu=experts_per_gpu, hosts=hosts,
                       node_name_map=node_name_map, topology=topology, stats=stats_ref, flow=flow,
                       dedup=dedup, solver=solver, time_limit_s=time_limit_s, work_limit=work_limit, seed=seed,
                       balance_per_layer=balance_per_layer,
                       tier_costs=parse_pairs(tier_costs, "--tier-cost", TIER_NAMES),
                       synth=parse_pairs(synth, "--synth", SYNTH_KNOBS), replicas=replicas, replan_from=replan_from,
                       max_moves=max_moves, move_cost=move_cost, strong_bound_s=strong_bound_s,
                       redundant_experts=redundant_experts, phase=phase)
    with interrupts.keep_best_plan(), atomic_dir(out_dir, force=force) as tmp:
        with console.solve_progress() as progress:
            plan = solve_request(req, progress=progress)
        launch = plan.write_files(tmp, launch=not no_emit)
        outcome = plan.outcome
    summary = summarize(outcome, out_dir)
    if as_json:
        Console().json(summary)
        return
    print_summary(console, summary)
    if launch is not None:
        print_launch(console, launch, out_dir)


def summarize(outcome, out_dir: str) -> dict:
    plan = outcome.plan
    s = plan.solver
    lm = plan.baselines.get("layer-major")
    return {
        "out": str(out_dir),
        "model": plan.model.name,
        "cluster": plan.cluster.name,
        "topology": plan.topology.description,
        "flow": plan.flow.name + (" (node dedup)" if plan.flow.dedup else ""),
        "items": plan.model.num_items,
        "gpus": plan.num_gpus,
        "solver": s.name,
        "status": s.status,
        "objective": s.objective,
        "bound": s.bound,
        "gap": s.gap,
        "wall_time_s": outcome.run["wall_time_s"],
        "stop_reason": s.stop_reason,
        "work": s.work,
        "work_limit": s.work_limit,
        "reproducible": s.reproducible,
        "stop_note": s.stop_note,
        "cross_node_bytes_per_token": plan.cost.cross_node_bytes_per_token,
        "load_imbalance": plan.cost.load_imbalance,
        "replicas": outcome.problem.num_replicas,
        "baselines": {k: v.model_dump() for k, v in plan.baselines.items()},
        "vs_layer_major": (s.objective / lm.objective - 1.0) if lm and lm.objective else None,
        "chosen": outcome.result.details.get("chosen", "search"),
        "search_objective": outcome.result.details.get("search_objective"),
        "replan": outcome.result.details.get("replan"),
        "better_beyond_move_limit": outcome.result.details.get("better_beyond_move_limit", []),
        "assumed_independent": plan.stats.provenance.get("assumed_independent", []),
    }


def print_summary(console: Console, m: dict) -> None:
    console.line(f"{m['model']} on {m['cluster']}: {m['items']:,} experts on {m['gpus']:,} GPUs; {m['topology']}")
    console.line(f"flow {m['flow']}; solver {m['solver']} ({m['status']}, stopped: {m['stop_reason']}, "
                 f"{m['wall_time_s']:.1f} s)")
    if m["stop_note"]:
        console.line(f"warning: {m['stop_note']}")
    if m.get("assumed_independent"):
        missing = [w for part, w in (("coact", "co-activation"), ("trans", "layer-to-layer traffic"))
                   if part in m["assumed_independent"]]
        console.line(f"note: the statistics hold no {' or '.join(missing)} counts: {' and '.join(missing)} "
                     f"{'were' if len(missing) > 1 else 'was'} not measured; planned as if experts were chosen "
                     "independently (balance and popularity only)")
    rows = [("plan", fmt_bytes(m["objective"]), fmt_bytes(m["cross_node_bytes_per_token"]), "")]
    for name, b in m["baselines"].items():
        rel = (m["objective"] / b["objective"] - 1.0) * 100 if b["objective"] else 0.0
        rows.append((name, fmt_bytes(b["objective"]), fmt_bytes(b["cross_node_bytes_per_token"]), f"{rel:+.1f}%"))
    console.table(None, ["placement", "objective", "cross-node B/token", "plan vs it"], rows, right=(1, 2, 3))
    console.line(f"bound {fmt_bytes(m['bound'])}   gap {m['gap'] * 100:.1f}%   (objective: tier-weighted bytes "
                 f"per token, leaf-byte equivalents)")
    if m["load_imbalance"] is not None:
        copies = f" with {m['replicas']} replicas" if m["replicas"] else ""
        console.line(f"load imbalance{copies}: busiest GPU {m['load_imbalance']:.2f}x its layer's mean")
    if m.get("replan"):
        rp = m["replan"]
        limit = "no limit" if rp["max_moves"] is None else f"limit {rp['max_moves']:,}"
        console.line(f"re-planned from {rp['from']}: moved {rp['moved_experts']:,} of {m['items']:,} experts "
                     f"({rp['bytes_to_move'] / 1e9:,.2f} GB of weights to move; {limit})")
    if m.get("chosen", "search") != "search":
        within = " within the move limit" if m.get("replan") else ""
        console.line(f"returned {m['chosen']}: the search's plan ({fmt_bytes(m['search_objective'])}) was worse "
                     f"than this baseline{within}")
    elif m.get("replan"):
        console.line("returned the search's plan: no baseline within the move limit is better")
    for b in m.get("better_beyond_move_limit", []):
        rel = (m["objective"] / b["objective"] - 1.0) * 100
        console.line(f"warning: {b['name']} is better (this plan is {rel:+.1f}% against it) but moves "
                     f"{b['moved_experts']:,} experts, over --max-moves {m['replan']['max_moves']:,}; raise "
                     f"--max-moves to allow it")
    console.line(f"wrote {Path(m['out']) / 'plan.json'}")
