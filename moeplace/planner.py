"""The planning pipeline as one library call: inputs -> problem -> solver -> plan (+ baselines).

`moeplace solve` is a thin wrapper over `plan_placement`; so is any script that embeds moeplace.
"""

from __future__ import annotations

import dataclasses
import datetime
import platform
from dataclasses import dataclass

import numpy as np

from moeplace import interrupts
from moeplace.placement.baselines import BASELINES
from moeplace.placement.builder import build_fabric, build_problem, check_capacity, default_tier_costs, load_stats
from moeplace.placement.cost import evaluate
from moeplace.placement.metrics import load_imbalance
from moeplace.placement.plan import BaselineRecord, Plan, SolverRecord, StatsRecord, build_plan
from moeplace.placement.problem import Problem
from moeplace.placement.schema import ClusterSpec, ModelSpec
from moeplace.placement.validate import is_feasible
from moeplace.solvers import SolveConfig, SolveResult, solve
from moeplace.solvers.registry import default_time_limit_s
from moeplace.solvers.step import DEFAULT_SOLVER, is_reproducible, solve_placement  # noqa: F401
from moeplace.solvers.budget import STOP_CONVERGED, STOP_WORK, bound_message, stop_message  # noqa: F401
from moeplace.traces.stats import RoutingStats
from moeplace.version import __version__


@dataclass(frozen=True)
class PlanRequest:
    model: ModelSpec
    cluster: ClusterSpec
    topology: str | None = None
    stats_ref: str | None = None
    stats: RoutingStats | None = None  # statistics given as an object (the Python API); else stats_ref
    flow: str = "chain"
    dedup: bool = True
    solver: str = DEFAULT_SOLVER
    time_limit_s: float | None = None  # None: the solver's default (`registry.default_time_limit_s`)
    work_limit: float | None = None
    seed: int = 0
    balance_per_layer: bool = False
    tier_costs: dict[str, float] | None = None
    synth: dict | None = None
    replicas: int = 0
    replan_from: str | None = None
    max_moves: int | None = None
    move_cost: float = 0.0
    strong_bound_s: float = 0.0
    redundant_experts: int | str | None = None
    phase: str | None = None


@dataclass(frozen=True, eq=False)
class PlanOutcome:
    plan: Plan
    problem: Problem
    stats: RoutingStats
    result: SolveResult
    run: dict


def make_problem(req: PlanRequest) -> tuple[Problem, RoutingStats]:
    check_capacity(req.model, req.cluster, replicas=req.replicas)  # first: no statistics for a request that cannot fit
    fabric = build_fabric(req.cluster, req.topology)  # first: a bad topology file fails before any work
    stats = req.stats
    if stats is None:
        stats = load_stats(req.stats_ref, req.model, seed=req.seed, synth=req.synth)
    costs = default_tier_costs(req.cluster, fabric)
    if req.tier_costs:
        try:
            costs = costs.with_overrides(**req.tier_costs)
        except ValueError as exc:
            from moeplace.errors import InputError

            raise InputError(str(exc), field="--tier-cost") from None
    problem = build_problem(req.model, req.cluster, stats, fabric=fabric, flow=req.flow, dedup=req.dedup,
                            tier_costs=costs, balance_per_layer=req.balance_per_layer,
                            stats_source=req.stats_ref or "synthetic statistics", replicas=req.replicas)
    return problem, stats


def scored_baselines(problem: Problem, seed: int = 0) -> dict:
    """name -> (assignment int [items], its CostBreakdown) for every feasible baseline, computed once per plan."""
    out = {}
    for name, fn in BASELINES.items():
        a = fn(problem, seed) if name == "random" else fn(problem)
        if is_feasible(problem, a):
            out[name] = (a, evaluate(problem, a))
    return out


def baseline_records(problem: Problem, seed: int = 0, scored: dict | None = None) -> dict[str, BaselineRecord]:
    scored = scored_baselines(problem, seed) if scored is None else scored
    return {name: BaselineRecord(objective=round(c.objective, 6),
                                 cross_node_bytes_per_token=round(c.cross_node_bytes, 6))
            for name, (_, c) in scored.items()}


def plan_placement(req: PlanRequest, *, progress=None, hint: np.ndarray | None = None) -> PlanOutcome:
    if req.time_limit_s is None:
        req = dataclasses.replace(req, time_limit_s=default_time_limit_s(req.solver))
    if req.phase is not None and req.redundant_experts is None:
        from moeplace.errors import InputError

        raise InputError("the phase's time model is for EP layouts: add --flow ep --redundant-experts R|auto",
                         field="--phase")
    scored = None
    if req.redundant_experts is not None:
        from moeplace.ep.planning import plan_ep

        problem, stats, result = plan_ep(req)
    else:
        if req.replan_from:
            req = keep_plan_hosts(req)
        problem, stats = make_problem(req)
        origin = origin_assignment(req.replan_from, problem) if req.replan_from else None
        result = solve_placement(problem, solver=req.solver, seed=req.seed, work_limit=req.work_limit,
                                 time_limit_s=req.time_limit_s, progress=progress, hint=hint, origin=origin,
                                 max_moves=req.max_moves, move_cost=req.move_cost, strong_bound_s=req.strong_bound_s)
        scored = scored_baselines(problem, req.seed)
        result = best_of_search_and_baselines(problem, result, req, origin, scored)
    interrupts.search_done()  # a signal from here on waits for the plan to be written
    if interrupts.stop_reason() is not None:  # a signal stopped the search, whatever stop the solver saw last
        result = dataclasses.replace(result, stop_reason=interrupts.stop_reason())
    cost = evaluate(problem, result.item_gpu_I)
    reproducible = is_reproducible(result.stop_reason) and not result.details.get("bound_clock")
    note = stop_message(result.stop_reason, req.time_limit_s) or (
        bound_message() if result.details.get("bound_clock") else None)
    record = SolverRecord(name=result.solver, status=result.status, objective=round(result.objective, 6),
                          bound=round(result.bound, 6), gap=round(result.gap, 6),
                          bound_method=result.details.get("bound_method"), seed=req.seed,
                          time_limit_s=req.time_limit_s, work=result.work, work_limit=result.work_limit,
                          stop_reason=result.stop_reason, reproducible=reproducible,
                          stop_note=note, moeplace_version=__version__)
    plan = build_plan(problem, result.item_gpu_I, solver=record, cost=cost,
                      baselines=baseline_records(problem, req.seed, scored),
                      stats=StatsRecord(num_tokens=stats.num_tokens, provenance=stats.provenance),
                      load_imbalance=load_imbalance(problem, result.item_gpu_I, stats.load_LE))
    run = {
        "wall_time_s": round(result.wall_time_s, 3),
        "stop_reason": result.stop_reason,
        "deterministic": reproducible,
        "stop_note": note,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "details": _plain(result.details),
    }
    return PlanOutcome(plan=plan, problem=problem, stats=stats, result=dataclasses.replace(result), run=run)


def keep_plan_hosts(req: PlanRequest) -> PlanRequest:
    """Re-planning keeps the plan's host names (`--hosts` of the plan in service) unless new ones are given."""
    from moeplace.evaluation import resolve_plan_path
    from moeplace.placement.plan import load_plan
    from moeplace.placement.presets import validate_spec

    old = load_plan(resolve_plan_path(req.replan_from))
    if req.cluster.hosts is not None or old.cluster.hosts is None or old.cluster.num_nodes != req.cluster.num_nodes:
        return req
    cluster = validate_spec(ClusterSpec, {**req.cluster.model_dump(), "hosts": old.cluster.hosts}, "cluster")
    return dataclasses.replace(req, cluster=cluster)


def best_of_search_and_baselines(problem: Problem, result: SolveResult, req: PlanRequest,
                                 origin: np.ndarray | None, scored: dict | None = None) -> SolveResult:
    """The search's plan, or a baseline the tool computes (layer-major, ...) when that one is better within the
    move limit (re-planning: moved experts <= --max-moves, each costing --move-cost); `details["chosen"]` says
    which won, and `details["replan"]` what moved."""
    def moves(a: np.ndarray) -> int:
        return 0 if origin is None else int((a != origin).sum())

    def score(a: np.ndarray, obj: float) -> float:
        return obj + req.move_cost * moves(a)

    best_name, best_a, best_obj = "search", result.item_gpu_I, result.objective
    beyond = []  # baselines better than the search but over the move limit
    for name, (a, cost) in (scored_baselines(problem, req.seed) if scored is None else scored).items():
        obj = cost.objective
        if req.max_moves is not None and moves(a) > req.max_moves:
            if obj < result.objective * (1 - 1e-12) - 1e-9:
                beyond.append({"name": name, "objective": round(obj, 6), "moved_experts": moves(a)})
            continue
        if score(a, obj) < score(best_a, best_obj) * (1 - 1e-12) - 1e-9:
            best_name, best_a, best_obj = name, a, obj
    details = {**result.details, "chosen": best_name, "search_objective": round(result.objective, 6)}
    beyond = [b for b in beyond if b["objective"] < best_obj * (1 - 1e-12) - 1e-9]
    if beyond:
        details["better_beyond_move_limit"] = beyond
    if origin is not None:
        from moeplace.costmodel.compute import expert_shape

        n = moves(best_a)
        details["replan"] = {"moved_experts": n, "max_moves": req.max_moves, "move_cost": req.move_cost,
                             "bytes_to_move": n * int(expert_shape(problem.model).weight_bytes),
                             "from": str(req.replan_from)}
        details["moved_experts"] = n
    if best_name == "search":
        return dataclasses.replace(result, details=details)
    bound = min(result.bound, best_obj)
    return dataclasses.replace(result, item_gpu_I=np.asarray(best_a).copy(), objective=best_obj, bound=bound,
                               details=details)


def origin_assignment(path: str, problem: Problem) -> np.ndarray:
    """The assignment of a plan in service, checked against the problem being re-planned."""
    from moeplace.errors import InputError
    from moeplace.evaluation import resolve_plan_path
    from moeplace.placement.plan import load_plan

    from moeplace.placement.consistency import plan_problems

    p = resolve_plan_path(path)
    old = load_plan(p)
    problems = plan_problems(old)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InputError(problems[0] + more, source=str(p), field="placements")
    for field in ("num_experts", "num_moe_layers", "top_k"):
        a, b = getattr(old.model, field), getattr(problem.model, field)
        if a != b:
            raise InputError(f"the plan has {field} {a}, the model being planned {b}", source=str(p), field="model")
    if old.num_gpus != problem.num_gpus or old.cluster.gpus_per_node != problem.gpus_per_node:
        raise InputError(f"the plan covers {old.num_gpus} GPUs ({old.cluster.gpus_per_node} per node), the cluster "
                         f"{problem.num_gpus} ({problem.gpus_per_node} per node)", source=str(p), field="cluster")
    return old.item_gpu()


def _plain(obj):
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    return obj
