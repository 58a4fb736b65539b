"""Scoring a written plan on statistics or a trace (the library side of `moeplace evaluate`)."""

from __future__ import annotations

from pathlib import Path

from moeplace.errors import InputError
from moeplace.placement.builder import build_problem, load_stats
from moeplace.placement.metrics import placement_metrics
from moeplace.placement.plan import load_plan
from moeplace.placement.validate import violations
from moeplace.topologies.base import TIER_KEYS, TierCosts
from moeplace.topologies.resolve import rebuild_fabric


def resolve_plan_path(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / "plan.json"
    return p


def evaluate_plan(plan_path: str | Path, *, stats_path: str | None = None, trace_path: str | None = None) -> dict:
    if stats_path and trace_path:
        raise InputError("give --stats or --trace, not both", field="--trace")
    path = resolve_plan_path(plan_path)
    plan = load_plan(path)
    model, cluster = plan.model, plan.cluster
    if trace_path:
        stats = load_stats(trace_path, model)
        scored_on = f"trace {trace_path}"
    elif stats_path:
        stats = load_stats(stats_path, model)
        scored_on = f"statistics {stats_path}"
    else:
        prov = dict(plan.stats.provenance)
        if prov.get("source") != "synthetic":
            raise InputError(f"the plan was made from {prov.get('source', 'unknown')} statistics "
                             f"({prov.get('file', '?')}); give them again with --stats or --trace", source=str(path))
        knobs = {k: prov[k] for k in ("skew", "coact", "affinity", "cluster_size", "num_tokens", "seed") if k in prov}
        stats = load_stats(None, model, synth=knobs)
        scored_on = "the plan's synthetic statistics"
    fabric = rebuild_fabric(cluster, plan.topology.kind, plan.topology.params,
                            search_dirs=(path.parent, Path.cwd()))
    costs = TierCosts(tuple(float(plan.flow.tier_costs[k]) for k in TIER_KEYS))
    problem = build_problem(model, cluster, stats, fabric=fabric, flow=plan.flow.name, dedup=plan.flow.dedup,
                            tier_costs=costs, balance_per_layer=plan.balance_per_layer, copies_LE=plan.copies_LE(),
                            stats_source=str(stats_path or trace_path or "statistics"))
    item_gpu = plan.item_gpu()
    broken = violations(problem, item_gpu)
    if broken:
        raise InputError(f"plan is not feasible: {broken[0]}", source=str(path), field="placements")
    metrics = placement_metrics(problem, item_gpu, stats)
    return {"plan": str(path), "model": model.name, "gpus": plan.num_gpus, "scored_on": scored_on,
            "metrics": metrics.as_dict()}
