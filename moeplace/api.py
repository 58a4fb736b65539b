"""The Python front door: `moeplace.solve`, `moeplace.load_plan`, `moeplace.evaluate` (see docs/api.md).

The names and defaults are the CLI's (`moeplace solve --help`): a model or cluster is a preset name, a
.toml/.json path or a spec object; a topology is a generator name, a file, or a generator spec; statistics
are a file (statistics or any trace moeplace reads), a `RoutingStats`, or None for the synthetic default.
`moeplace solve` and `moeplace evaluate` are thin layers over these functions, so a script gets what the
command writes and prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moeplace.evaluation import evaluate_plan_record, resolve_plan_path
from moeplace.fileio import atomic_dir, dumps_json, write_text
from moeplace.launch.render import LaunchFiles, render_launch, write_launch
from moeplace.placement import plan as plan_file
from moeplace.placement.presets import load_cluster, load_model, validate_spec
from moeplace.placement.schema import ClusterSpec, ModelSpec
from moeplace.planner import DEFAULT_SOLVER, PlanOutcome, PlanRequest, plan_placement
from moeplace.topologies.specs import TOPOLOGY_CLASSES, DragonflyPlusSpec, FatTreeSpec
from moeplace.traces.stats import RoutingStats

__all__ = ["Plan", "solve", "plan_request", "solve_request", "load_plan", "evaluate"]


@dataclass(eq=False)
class Plan:
    """A placement plan: the `plan.json` record (`record`), and for a fresh solve what `run.json` holds
    and the solve's problem, statistics and result (`outcome`). Fields of the record read through:
    `plan.model`, `plan.cluster`, `plan.flow`, `plan.placements`, ..."""

    record: plan_file.Plan
    run: dict | None = None
    outcome: PlanOutcome | None = None
    path: Path | None = None

    @property
    def objective(self) -> float:
        """Tier-weighted bytes per token (leaf-byte equivalents), as recorded in plan.json."""
        return float(self.record.solver.objective)

    @property
    def bound(self) -> float:
        """Proven lower bound on the objective of any feasible plan."""
        return float(self.record.solver.bound)

    @property
    def gap(self) -> float:
        """(objective - bound) / objective."""
        return float(self.record.solver.gap)

    def __repr__(self) -> str:
        r = self.record
        where = f", path={str(self.path)!r}" if self.path else ""
        return (f"Plan(model={r.model.name!r}, gpus={r.num_gpus}, flow={r.flow.name!r}, solver={r.solver.name!r}, "
                f"objective={self.objective:.6g}, bound={self.bound:.6g}, gap={self.gap:.4f}{where})")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("record", "run", "outcome", "path"):
            raise AttributeError(name)
        return getattr(self.record, name)

    def write_files(self, directory: str | Path, *, launch: bool = True) -> LaunchFiles | None:
        """plan.json, run.json (when there is one) and the launch files, into an existing directory; the
        launch files written (None with launch=False)."""
        d = Path(directory)
        write_text(d / "plan.json", plan_file.plan_json(self.record))
        if self.run is not None:
            write_text(d / "run.json", dumps_json(self.run))
        moved = None if self.outcome is None else self.outcome.result.details.get("migration")
        if moved is not None:
            from moeplace.ep.migrate import migration_json

            write_text(d / "migration.json", migration_json(moved["moves"], num_gpus=self.outcome.problem.num_gpus,
                                                            num_slots=self.outcome.result.details["num_slots"]))
        files = render_launch(self.record) if launch else None
        if files is not None:
            write_launch(d, files)
        return files

    def save(self, directory: str | Path, *, launch: bool = True, force: bool = False) -> Path:
        """Write what `moeplace solve --out DIRECTORY` writes, atomically; the path of plan.json.

        launch=False: plan.json and run.json only (`--no-emit`); force: replace an existing directory."""
        with atomic_dir(directory, force=force) as tmp:
            self.write_files(tmp, launch=launch)
        self.path = Path(directory) / "plan.json"
        return self.path


def _model(model: str | Path | ModelSpec | None) -> ModelSpec:
    return model if isinstance(model, ModelSpec) else load_model(None if model is None else str(model))


def _cluster(cluster: str | Path | ClusterSpec | None, nodes: int | None, gpus_per_node: int | None,
             experts_per_gpu: int | None, hosts: str | None,
             node_name_map: str | Path | None = None) -> ClusterSpec:
    overrides = {"num_nodes": nodes, "gpus_per_node": gpus_per_node, "experts_per_gpu": experts_per_gpu,
                 "hosts": hosts, "node_name_map": None if node_name_map is None else str(node_name_map)}
    if not isinstance(cluster, ClusterSpec):
        return load_cluster(None if cluster is None else str(cluster), **overrides)
    data = {**cluster.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    return validate_spec(ClusterSpec, data, "cluster")


def plan_request(*, model: str | Path | ModelSpec | None = None, cluster: str | Path | ClusterSpec | None = None,
                 nodes: int | None = None, gpus_per_node: int | None = None, experts_per_gpu: int | None = None,
                 hosts: str | None = None, node_name_map: str | Path | None = None,
                 topology: str | Path | FatTreeSpec | DragonflyPlusSpec | None = None,
                 stats: str | Path | RoutingStats | None = None, flow: str = "chain", dedup: bool = True,
                 solver: str = DEFAULT_SOLVER, time_limit_s: float | None = None, work_limit: float | None = None, seed: int = 0,
                 strong_bound_s: float = 0.0, balance_per_layer: bool = False,
                 tier_costs: dict[str, float] | None = None, synth: dict | None = None, replicas: int = 0,
                 replan_from: str | Path | None = None, max_moves: int | None = None,
                 move_cost: float = 0.0, redundant_experts: int | str | None = None,
                 phase: str | None = None) -> PlanRequest:
    """The request `solve` runs, its inputs resolved (presets, files, spec objects) and checked."""
    model_spec = _model(model)
    cluster_spec = _cluster(cluster, nodes, gpus_per_node, experts_per_gpu, hosts, node_name_map)
    if isinstance(topology, tuple(TOPOLOGY_CLASSES.values())):
        cluster_spec = validate_spec(ClusterSpec, {**cluster_spec.model_dump(), "topology": topology.model_dump()},
                                     "topology")
        topology = None
    from moeplace.placement.builder import check_capacity
    from moeplace.placement.fabric import sized_by_file

    topology = None if topology is None else str(topology)
    cluster_spec, sized_from = sized_by_file(cluster_spec, topology, nodes_given=nodes is not None or hosts is not None)
    # capacity before any statistics are built or traces read (EP layouts check their own; a phase without
    # one is refused by plan_placement first)
    if redundant_experts is None and phase is None:
        check_capacity(model_spec, cluster_spec, replicas=replicas, nodes_from=sized_from)
    stats_obj = stats if isinstance(stats, RoutingStats) else None
    stats_ref = None if stats is None or stats_obj is not None else str(stats)
    return PlanRequest(model=model_spec, cluster=cluster_spec, topology=topology,
                       stats_ref=stats_ref, stats=stats_obj, flow=flow, dedup=dedup, solver=solver,
                       time_limit_s=time_limit_s, work_limit=work_limit, seed=seed,
                       balance_per_layer=balance_per_layer, tier_costs=tier_costs, synth=synth, replicas=replicas,
                       replan_from=None if replan_from is None else str(replan_from), max_moves=max_moves,
                       move_cost=move_cost, strong_bound_s=strong_bound_s,
                       redundant_experts=redundant_experts, phase=phase)


def solve_request(req: PlanRequest, *, progress=None) -> Plan:
    """Solve a request (`plan_request`); `progress(info)` is called with the incumbent as it improves."""
    outcome = plan_placement(req, progress=progress)
    return Plan(record=outcome.plan, run=outcome.run, outcome=outcome)


def solve(*, model: str | Path | ModelSpec | None = None, cluster: str | Path | ClusterSpec | None = None,
          nodes: int | None = None, gpus_per_node: int | None = None, experts_per_gpu: int | None = None,
          hosts: str | None = None, node_name_map: str | Path | None = None,
          topology: str | Path | FatTreeSpec | DragonflyPlusSpec | None = None,
          stats: str | Path | RoutingStats | None = None, flow: str = "chain", dedup: bool = True,
          solver: str = DEFAULT_SOLVER, time_limit_s: float | None = None, work_limit: float | None = None, seed: int = 0,
          strong_bound_s: float = 0.0, balance_per_layer: bool = False, tier_costs: dict[str, float] | None = None,
          synth: dict | None = None, replicas: int = 0, replan_from: str | Path | None = None,
          max_moves: int | None = None, move_cost: float = 0.0, redundant_experts: int | str | None = None,
          phase: str | None = None, progress=None) -> Plan:
    """Plan a placement: `moeplace solve` as a function, with its names and defaults (docs/api.md);
    `progress(info)` is called with the incumbent as it improves. Nothing is written until `Plan.save`."""
    options = {k: v for k, v in locals().items() if k != "progress"}
    return solve_request(plan_request(**options), progress=progress)


def load_plan(path: str | Path) -> Plan:
    """A written plan: plan.json or its directory (run.json beside it is kept when present)."""
    p = resolve_plan_path(path)
    record = plan_file.load_plan(p)
    run_path = p.parent / "run.json"
    run = None
    if run_path.is_file():
        try:
            run = json.loads(run_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            run = None
    return Plan(record=record, run=run, path=p)


def evaluate(plan: Plan | str | Path, *, stats: str | Path | None = None, trace: str | Path | None = None) -> dict:
    """The metrics `moeplace evaluate --json` prints: the plan scored on statistics, a per-token trace, or
    (neither given) its own statistics, regenerated when synthetic."""
    if not isinstance(plan, Plan):
        plan = load_plan(plan)
    return evaluate_plan_record(plan.record, plan.path, stats_path=None if stats is None else str(stats),
                                trace_path=None if trace is None else str(trace))
