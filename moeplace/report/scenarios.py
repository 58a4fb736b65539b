"""What a comparison compares: hardware worlds, designs, scales, and the placed deployments behind them.

    world    a cluster and a hardware profile: the presets `seed` and `h100-sxm` by default, or a profile
             file written by `moeplace calibrate` on a cluster given by `--cluster`
    design   experts per GPU per MoE layer: 1 is the seed's expert-per-GPU chain (one instance = every
             layer's experts on their own GPUs); e > 1 is classic expert parallelism, EP groups of E / e
             GPUs each holding e experts of every MoE layer (the `ep` flow), with data-parallel (`dp`,
             the ep flow's home GPU) or tensor-parallel (`tp`) attention
    scale    `equal-gpus`: data-parallel replicas fill the world's cluster (1,856 GPUs in the seed);
             `one-instance`: one model instance of each design

Every placement is made by solve's planning step (`moeplace.solvers.step.solve_placement`: the same solver, work
budget and seed as `moeplace solve`, so the expert-per-GPU design is the plan `solve` writes for the same
inputs), with balance per layer for the baselines, once per design, and evaluated on every world (one plan,
several machines).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from moeplace.costmodel.deployment import Deployment
from moeplace.costmodel.presets import PROFILE_PRESETS, load_profile
from moeplace.costmodel.profile import HardwareProfile
from moeplace.errors import InputError
from moeplace.placement.builder import build_fabric, default_tier_costs
from moeplace.placement.flows import build_traffic, get_flow
from moeplace.placement.plan import load_plan
from moeplace.placement.presets import CLUSTER_PRESETS, load_cluster
from moeplace.placement.problem import Problem
from moeplace.placement.schema import ClusterSpec, ModelSpec
from moeplace.placement.traffic import Traffic
from moeplace.placement.validate import violations
from moeplace.traces.stats import RoutingStats

SCALES = ("equal-gpus", "one-instance")


@dataclass(frozen=True)
class World:
    key: str
    cluster: ClusterSpec
    profile: HardwareProfile
    source: str


@dataclass(frozen=True)
class Design:
    experts_per_gpu: int
    attention: str = "dp"

    @property
    def key(self) -> str:
        return "seed" if self.experts_per_gpu == 1 else f"ep{self.experts_per_gpu}-{self.attention}"

    def label(self, model: ModelSpec) -> str:
        if self.experts_per_gpu == 1:
            return "expert per GPU (seed, chain)"
        group = model.num_experts // self.experts_per_gpu
        att = "DP attention" if self.attention == "dp" else "TP attention"
        return f"EP{group}, {self.experts_per_gpu} experts/GPU ({att})"


def resolve_worlds(refs: tuple[str, ...], cluster_ref: str | None) -> list[World]:
    """Each ref is a profile preset (with the cluster preset of its name) or a calibrated profile file
    (on `cluster_ref`, default the seed cluster)."""
    out = []
    for ref in refs:
        prof = load_profile(ref)
        if ref in PROFILE_PRESETS:
            cluster = CLUSTER_PRESETS[ref] if ref in CLUSTER_PRESETS else load_cluster(cluster_ref)
            source = f"preset {ref!r}"
        else:
            cluster = load_cluster(cluster_ref)
            source = f"calibrated profile {ref} ({prof.device}, measured {prof.measured_at or 'at an unknown time'})"
        if any(w.key == prof.name for w in out):
            raise InputError(f"hardware profile {prof.name!r} is given twice", field="--profile")
        out.append(World(key=prof.name, cluster=cluster, profile=prof, source=source))
    return out


def designs(experts_per_gpu: tuple[int, ...], attentions: tuple[str, ...], model: ModelSpec) -> list[Design]:
    out = []
    for e in experts_per_gpu:
        if e < 1 or model.num_experts % e:
            raise InputError(f"{e} does not divide the {model.num_experts} experts of a layer", field="experts-per-gpu")
        if e == 1:
            out.append(Design(1, "-"))
            continue
        out.extend(Design(e, a) for a in attentions)
    return out


@dataclass(frozen=True, eq=False)
class Placed:
    """One design's instance: its problem on a world's cluster, the placement, and the solver's record."""

    problem: Problem
    item_gpu_I: np.ndarray
    record: dict


class Placer:
    """Builds problems from shared statistics and traffic, solves each design once, and makes deployments."""

    def __init__(self, model: ModelSpec, stats: RoutingStats, *, solver: str | None = None,
                 work_limit: float | None = None, seed: int = 0, plan_path: str | None = None) -> None:
        """solver None: solve's default; work_limit None: the solver's own budget (as `moeplace solve`)."""
        from moeplace.solvers.step import DEFAULT_SOLVER

        self.model = model
        self.stats = stats
        self.solver = solver or DEFAULT_SOLVER
        self.work_limit = work_limit
        self.seed = seed
        self.plan_path = plan_path
        self._traffic: dict[str, Traffic] = {}
        self._problems: dict[tuple[str, int], Problem] = {}
        self._placements: dict[int, tuple[np.ndarray, dict]] = {}

    def traffic(self, flow: str) -> Traffic:
        if flow not in self._traffic:
            self._traffic[flow] = build_traffic(flow, self.stats, self.model, dedup=True)
        return self._traffic[flow]

    def instance_cluster(self, world: World, design: Design) -> ClusterSpec:
        c = world.cluster
        L = self.model.num_moe_layers
        if design.experts_per_gpu == 1:
            if c.num_gpus < self.model.num_items:
                raise InputError(f"the expert-per-GPU design needs {self.model.num_items} GPUs, cluster "
                                 f"{c.name!r} has {c.num_gpus}", field="cluster")
            return c.model_copy(update={"experts_per_gpu": 1})
        group = self.model.num_experts // design.experts_per_gpu
        gpn = c.gpus_per_node
        if group > gpn and group % gpn:
            raise InputError(f"an EP group of {group} GPUs does not fill whole nodes of {gpn}", field="experts-per-gpu")
        nodes, per_node = (group // gpn, gpn) if group >= gpn else (1, group)
        return c.model_copy(update={"num_nodes": nodes, "gpus_per_node": per_node, "hosts": None,
                                    "experts_per_gpu": design.experts_per_gpu * L})

    def problem(self, world: World, design: Design) -> Problem:
        key = (world.key, design.experts_per_gpu)
        if key not in self._problems:
            cluster = self.instance_cluster(world, design)
            flow = "chain" if design.experts_per_gpu == 1 else "ep"
            fabric = build_fabric(cluster)
            self._problems[key] = Problem(model=self.model, cluster=cluster, fabric=fabric, flow=flow, dedup=True,
                                          tier_costs=default_tier_costs(cluster, fabric), traffic=self.traffic(flow),
                                          balance_per_layer=get_flow(flow).balance_per_layer)
        return self._problems[key]

    def placement(self, problem: Problem, design: Design) -> tuple[np.ndarray, dict]:
        e = design.experts_per_gpu
        if e not in self._placements:
            if e == 1 and self.plan_path:
                self._placements[e] = self._from_plan(problem)
            else:
                self._placements[e] = self._solve(problem)
        item_gpu, record = self._placements[e]
        broken = violations(problem, item_gpu)
        if broken:
            raise InputError(f"placement does not fit this cluster: {broken[0]}", field="plan")
        return item_gpu, record

    def _solve(self, problem: Problem) -> tuple[np.ndarray, dict]:
        from moeplace.solvers.step import solve_placement

        r = solve_placement(problem, solver=self.solver, seed=self.seed, work_limit=self.work_limit)
        return r.item_gpu_I, {"solver": r.solver, "objective": float(r.objective), "bound": float(r.bound),
                              "gap": float(r.gap), "stop_reason": r.stop_reason, "work": float(r.work),
                              "source": "solved"}

    def _from_plan(self, problem: Problem) -> tuple[np.ndarray, dict]:
        plan = load_plan(self.plan_path)
        if plan.flow.name != problem.flow or plan.num_gpus != problem.num_gpus or plan.model != self.model:
            raise InputError(f"expected an expert-per-GPU chain plan of {self.model.name} on {problem.num_gpus} GPUs, "
                             f"got flow {plan.flow.name} on {plan.num_gpus} GPUs", source=self.plan_path)
        s = plan.solver
        return plan.item_gpu(), {"solver": s.name, "objective": s.objective, "bound": s.bound, "gap": s.gap,
                                 "stop_reason": s.stop_reason, "work": s.work, "source": f"plan {self.plan_path}"}

    def deployment(self, world: World, design: Design, scale: str) -> Deployment:
        problem = self.problem(world, design)
        item_gpu, record = self.placement(problem, design)
        instances = 1 if scale == "one-instance" else max(1, world.cluster.num_gpus // problem.num_gpus)
        return Deployment(name=design.label(self.model), problem=problem, item_gpu_I=item_gpu, stats=self.stats,
                          instances=instances, source=record["source"],
                          ep_attention="tp" if design.attention == "tp" else "dp")


def with_instances(dep: Deployment, instances: int) -> Deployment:
    return dataclasses.replace(dep, instances=instances)
