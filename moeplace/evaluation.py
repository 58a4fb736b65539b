"""A written plan rebuilt as a problem, and scored on statistics or a trace (`moeplace evaluate`).

`load_plan_problem` is the one way to turn a plan.json back into its `Problem` and assignment: the fabric
from the plan's topology record, the tier costs and flow as recorded, the copies per expert from the
placements, and the statistics given (or the plan's own synthetic ones, regenerated from their knobs).
`moeplace evaluate`, `predict`, `compare --plan` and `topology loads` all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moeplace.errors import InputError
from moeplace.placement.baselines import BASELINES
from moeplace.placement.builder import ASSUMED_NOTE, build_problem, check_capacity, load_stats
from moeplace.placement.consistency import plan_problems
from moeplace.placement.cost import evaluate
from moeplace.placement.fabric import rebuild_fabric
from moeplace.placement.metrics import placement_metrics
from moeplace.placement.plan import Plan, load_plan
from moeplace.placement.problem import Problem
from moeplace.placement.validate import is_feasible, violations
from moeplace.topologies.base import TIER_KEYS, TierCosts
from moeplace.traces.stats import RoutingStats

SYNTH_KNOBS = ("skew", "coact", "affinity", "cluster_size", "num_tokens", "seed")


def resolve_plan_path(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / "plan.json"
    return p


@dataclass(frozen=True, eq=False)
class PlanProblem:
    path: Path
    plan: Plan
    problem: Problem
    stats: RoutingStats
    item_gpu_I: np.ndarray
    scored_on: str


def plan_statistics(plan: Plan, path: Path, stats_ref: str | None = None,
                    trace_ref: str | None = None) -> tuple[RoutingStats, str]:
    """The statistics to score a plan on: a file given, or the plan's own synthetic statistics."""
    if stats_ref and trace_ref:
        raise InputError("give --stats or --trace, not both", field="--trace")
    if trace_ref:
        return load_stats(trace_ref, plan.model), f"trace {trace_ref}"
    if stats_ref:
        return load_stats(stats_ref, plan.model), f"statistics {stats_ref}"
    prov = dict(plan.stats.provenance)
    if prov.get("source") != "synthetic":
        raise InputError(f"the plan was made from {prov.get('source', 'unknown')} statistics "
                         f"({prov.get('file', '?')}); give them again with --stats or --trace", source=str(path))
    knobs = {k: prov[k] for k in SYNTH_KNOBS if k in prov}
    return load_stats(None, plan.model, synth=knobs), "the plan's synthetic statistics"


def load_plan_problem(plan_path: str | Path, *, stats_ref: str | None = None,
                      trace_ref: str | None = None) -> PlanProblem:
    path = resolve_plan_path(plan_path)
    return plan_problem(load_plan(path), path, stats_ref=stats_ref, trace_ref=trace_ref)


def plan_problem(plan: Plan, path: Path | None, *, stats_ref: str | None = None,
                 trace_ref: str | None = None) -> PlanProblem:
    """A plan record rebuilt as its problem; `path` is where it was read from (None: never written), which
    names it in errors and is searched for the topology file it was made on."""
    label = Path(str(path) if path is not None else "plan")
    problems = plan_problems(plan)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InputError(problems[0] + more, source=str(label), field="placements")
    check_capacity(plan.model, plan.cluster, copies=int(plan.copies_LE().sum()))  # before statistics or a trace
    stats, scored_on = plan_statistics(plan, label, stats_ref, trace_ref)
    if stats.provenance.get("assumed_independent") and (stats_ref or trace_ref):
        scored_on += f" (load only: {ASSUMED_NOTE})"
    search = (path.parent, Path.cwd()) if path is not None else (Path.cwd(),)
    fabric = rebuild_fabric(plan.cluster, plan.topology.kind, plan.topology.params, search_dirs=search)
    costs = TierCosts(tuple(float(plan.flow.tier_costs[k]) for k in TIER_KEYS))
    problem = build_problem(plan.model, plan.cluster, stats, fabric=fabric, flow=plan.flow.name,
                            dedup=plan.flow.dedup, tier_costs=costs, balance_per_layer=plan.balance_per_layer,
                            copies_LE=plan.copies_LE(), stats_source=str(stats_ref or trace_ref or "statistics"))
    item_gpu = plan.item_gpu()
    broken = violations(problem, item_gpu)
    if broken:
        raise InputError(f"plan is not feasible: {broken[0]}", source=str(label), field="placements")
    return PlanProblem(path=label, plan=plan, problem=problem, stats=stats, item_gpu_I=item_gpu, scored_on=scored_on)


def evaluate_plan(plan_path: str | Path, *, stats_path: str | None = None, trace_path: str | None = None) -> dict:
    path = resolve_plan_path(plan_path)
    return evaluate_plan_record(load_plan(path), path, stats_path=stats_path, trace_path=trace_path)


def evaluate_plan_record(plan: Plan, path: Path | None, *, stats_path: str | None = None,
                         trace_path: str | None = None) -> dict:
    """What `moeplace evaluate --json` prints, for a plan record read from `path` (None: never written)."""
    pp = plan_problem(plan, path, stats_ref=stats_path, trace_ref=trace_path)
    metrics = placement_metrics(pp.problem, pp.item_gpu_I, pp.stats)
    return {"plan": None if path is None else str(pp.path), "model": pp.plan.model.name, "gpus": pp.plan.num_gpus,
            "scored_on": pp.scored_on, "metrics": metrics.as_dict(),
            "baselines": baseline_scores(pp.problem, pp.plan.solver.seed)}


def baseline_scores(problem: Problem, seed: int) -> dict[str, dict[str, float]]:
    """The reference placements `solve` compares with (layer-major, round-robin, random with the plan's seed),
    scored on the same problem and statistics as the plan; those infeasible here are left out."""
    out = {}
    for name, fn in BASELINES.items():
        a = fn(problem, seed) if name == "random" else fn(problem)
        if is_feasible(problem, a):
            c = evaluate(problem, a)
            out[name] = {"objective": round(c.objective, 6), "cross_node_bytes_per_token": round(c.cross_node_bytes, 6)}
    return out
