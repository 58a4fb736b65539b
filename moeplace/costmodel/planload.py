"""A plan.json as a deployment for the cost model: its problem rebuilt as `moeplace evaluate` rebuilds it."""

from __future__ import annotations

from pathlib import Path

from moeplace.costmodel.deployment import Deployment
from moeplace.errors import InputError
from moeplace.evaluation import resolve_plan_path
from moeplace.placement.builder import build_problem, load_stats
from moeplace.placement.plan import Plan, load_plan
from moeplace.placement.stats import RoutingStats
from moeplace.placement.validate import violations
from moeplace.topologies.base import TIER_KEYS, TierCosts

SYNTH_KEYS = ("skew", "coact", "affinity", "cluster_size", "num_tokens", "seed")


def plan_stats(plan: Plan, path: Path, stats_path: str | None) -> tuple[RoutingStats, str]:
    """The statistics to predict on: `stats_path`, or the plan's own synthetic statistics regenerated."""
    if stats_path:
        return load_stats(stats_path, plan.model), f"statistics {stats_path}"
    prov = dict(plan.stats.provenance)
    if prov.get("source") != "synthetic":
        raise InputError(f"the plan was made from {prov.get('source', 'unknown')} statistics "
                         f"({prov.get('file', '?')}); give them again with --stats", source=str(path))
    knobs = {k: prov[k] for k in SYNTH_KEYS if k in prov}
    return load_stats(None, plan.model, synth=knobs), "the plan's synthetic statistics"


def deployment_from_plan(plan_path: str | Path, *, stats_path: str | None = None, instances: int = 1,
                         ep_attention: str = "dp") -> tuple[Deployment, Plan, str]:
    """(deployment, plan, what the statistics are) for `moeplace predict`."""
    from moeplace.topologies.resolve import rebuild_fabric

    path = resolve_plan_path(plan_path)
    plan = load_plan(path)
    stats, scored_on = plan_stats(plan, path, stats_path)
    fabric = rebuild_fabric(plan.cluster, plan.topology.kind, plan.topology.params,
                            search_dirs=(path.parent, Path.cwd()))
    costs = TierCosts(tuple(float(plan.flow.tier_costs[k]) for k in TIER_KEYS))
    problem = build_problem(plan.model, plan.cluster, stats, fabric=fabric, flow=plan.flow.name, dedup=plan.flow.dedup,
                            tier_costs=costs, balance_per_layer=plan.balance_per_layer,
                            stats_source=str(stats_path or "statistics"))
    item_gpu = plan.item_gpu()
    broken = violations(problem, item_gpu)
    if broken:
        raise InputError(f"plan is not feasible: {broken[0]}", source=str(path), field="placements")
    dep = Deployment(name=f"{plan.flow.name} plan {path.parent.name or path.name}", problem=problem,
                     item_gpu_I=item_gpu, stats=stats, instances=instances, source=str(path),
                     ep_attention=ep_attention)
    return dep, plan, scored_on
