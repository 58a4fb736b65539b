"""A plan.json as a deployment for the cost model: its problem rebuilt as `moeplace evaluate` rebuilds it."""

from __future__ import annotations

from pathlib import Path

from moeplace.costmodel.deployment import Deployment
from moeplace.evaluation import load_plan_problem
from moeplace.placement.plan import Plan


def deployment_from_plan(plan_path: str | Path, *, stats_path: str | None = None, instances: int = 1,
                         ep_attention: str = "dp") -> tuple[Deployment, Plan, str]:
    """(deployment, plan, what the statistics are) for `moeplace predict`."""
    pp = load_plan_problem(plan_path, stats_ref=stats_path)
    path = pp.path
    if pp.problem.num_replicas and pp.problem.experts_per_gpu != 1:
        from moeplace.errors import InputError

        raise InputError(f"the plan is an EP layout with {pp.problem.num_replicas} redundant expert copies, which the "
                         "cost model does not model yet; `moeplace evaluate` scores its traffic",
                         source=str(path))
    dep = Deployment(name=f"{pp.plan.flow.name} plan {path.parent.name or path.name}", problem=pp.problem,
                     item_gpu_I=pp.item_gpu_I, stats=pp.stats, instances=instances, source=str(path),
                     ep_attention=ep_attention)
    return dep, pp.plan, pp.scored_on
