"""`plan.json`: every GPU's rank, host and expert, with the solver's record; schema exported from here.

The file is deterministic: the same inputs and seed give the same bytes. Run facts that vary between runs
(wall time, date, machine) go to `run.json` beside it, not into the plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from moeplace.errors import InputError
from moeplace.fileio import dumps_json, load_document
from moeplace.placement.cost import CostBreakdown
from moeplace.placement.problem import Problem
from moeplace.placement.schema import ClusterSpec, ModelSpec
from moeplace.topologies.base import TIER_KEYS

PLAN_FORMAT = "moeplace.plan"
PLAN_FORMAT_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Placement(_Strict):
    """One expert on one GPU (a GPU with no expert has null expert fields)."""

    rank: int = Field(ge=0, description="global rank: node index x GPUs per node + local GPU")
    node: int = Field(ge=0, description="0-based node index in host order")
    host: str
    local_gpu: int = Field(ge=0, description="GPU index inside the node (CUDA_VISIBLE_DEVICES value)")
    layer: int | None = Field(description="the model's 1-based layer number (4..61 in the seed)")
    moe_layer: int | None = Field(ge=0, description="0-based MoE layer index")
    expert: int | None = Field(ge=0, description="expert index inside its layer")
    replica: int | None = Field(ge=0, description="replica index of the expert (0 without replication)")


class CostRecord(_Strict):
    objective: float = Field(description="sum over tiers of bytes per token x tier cost (leaf-byte equivalents)")
    cross_node_bytes_per_token: float
    load_imbalance: float | None = Field(default=None, description="largest over MoE layers of the busiest GPU's "
                                         "tokens / the layer's mean per GPU (1.0 = balanced; copies split evenly)")
    bytes_per_token_by_tier: dict[str, float]
    bytes_per_token_by_kind: dict[str, float]


class SolverRecord(_Strict):
    name: str
    status: Literal["optimal", "feasible"]
    objective: float
    bound: float = Field(description="proven lower bound on the objective of any feasible plan")
    gap: float = Field(description="(objective - bound) / objective")
    bound_method: str | None = Field(default=None, description="what proved the bound: combinatorial, "
                                                               "node-matching-lp (k rounds), or the solver's own")
    seed: int
    time_limit_s: float = Field(description="the wall-clock safety net, seconds")
    work: float = Field(description="deterministic work units (exact move evaluations)")
    work_limit: float | None = Field(default=None, description="the work budget in force, work units")
    stop_reason: str = Field(description="which stop fired: work_limit or converged (reproducible), "
                                         "time_limit or interrupted (the plan depends on the machine's speed)")
    reproducible: bool = Field(default=True, description="the same inputs and seed give this plan on any "
                                                         "machine: the search stopped on work or convergence and "
                                                         "no stage of the bound hit its wall-clock safety net")
    stop_note: str | None = Field(default=None, description="what a stop on the clock (the search's or the "
                                                            "bound's) means, and how to avoid it")
    moeplace_version: str


class FlowRecord(_Strict):
    name: str
    dedup: bool
    tier_costs: dict[str, float]

    @field_validator("tier_costs")
    @classmethod
    def _costs(cls, v: dict[str, float]) -> dict[str, float]:
        bad = next(((k, c) for k, c in v.items() if not 0.0 <= c <= 1e12), None)
        if bad is not None:
            raise ValueError(f"tier cost {bad[0]} = {bad[1]!r} is outside 0..1e12")
        return v


class TopologyRecord(_Strict):
    kind: str
    description: str
    params: dict
    tier_labels: list[str]


class StatsRecord(_Strict):
    num_tokens: int
    provenance: dict


class BaselineRecord(_Strict):
    objective: float
    cross_node_bytes_per_token: float


class Plan(_Strict):
    format: Literal["moeplace.plan"] = PLAN_FORMAT
    format_version: Literal[1] = PLAN_FORMAT_VERSION
    model: ModelSpec
    cluster: ClusterSpec
    topology: TopologyRecord
    flow: FlowRecord
    stats: StatsRecord
    solver: SolverRecord
    cost: CostRecord
    baselines: dict[str, BaselineRecord]
    balance_per_layer: bool
    num_gpus: int
    placements: list[Placement]

    def copies_LE(self) -> np.ndarray:
        """int [MoE layers, experts]: copies of every expert in the plan (1 without replication)."""
        E, L = self.model.num_experts, self.model.num_moe_layers
        copies = np.ones((L, E), dtype=np.int64)
        for p in self.placements:
            if p.expert is None or p.moe_layer is None or p.replica is None:
                continue
            if not (0 <= p.moe_layer < L and 0 <= p.expert < E):
                raise InputError(f"rank {p.rank}: expert {p.expert} of MoE layer {p.moe_layer} is outside the "
                                 f"model's {L} MoE layers x {E} experts", field="placements")
            copies[p.moe_layer, p.expert] = max(copies[p.moe_layer, p.expert], p.replica + 1)
        return copies

    def item_gpu(self) -> np.ndarray:
        """The assignment `item_gpu_I` read back from the placements (items numbered as in
        `moeplace.placement.replication`: experts moe_layer x E + expert, then extra copies)."""
        from moeplace.placement.replication import item_table

        E = self.model.num_experts
        base, replica = item_table(self.copies_LE())
        index = {(int(b), int(r)): i for i, (b, r) in enumerate(zip(base, replica))}
        out = np.full(base.size, -1, dtype=np.int64)
        for p in self.placements:
            if p.expert is None or p.moe_layer is None:
                continue
            item = index[(p.moe_layer * E + p.expert, p.replica or 0)]
            if out[item] >= 0:
                raise InputError(f"expert {p.expert} of MoE layer {p.moe_layer} (replica {p.replica}) is placed "
                                 "twice", field="placements")
            out[item] = p.node * self.cluster.gpus_per_node + p.local_gpu
        missing = np.flatnonzero(out < 0)
        if missing.size:
            i = int(base[missing[0]])
            raise InputError(f"expert {i % E} of MoE layer {i // E} (replica {int(replica[missing[0]])}) is not "
                             f"placed ({missing.size} missing)", field="placements")
        return out


def cost_record(cost: CostBreakdown, labels: tuple[str, ...], load_imbalance: float | None = None) -> CostRecord:
    return CostRecord(objective=round(cost.objective, 6), cross_node_bytes_per_token=round(cost.cross_node_bytes, 6),
                      load_imbalance=None if load_imbalance is None else round(load_imbalance, 6),
                      bytes_per_token_by_tier={labels[t]: round(v, 6) for t, v in enumerate(cost.bytes_by_tier)},
                      bytes_per_token_by_kind={k: round(v, 6) for k, v in cost.bytes_by_kind.items()})


def build_plan(problem: Problem, item_gpu_I: np.ndarray, *, solver: SolverRecord, cost: CostBreakdown,
               baselines: dict[str, BaselineRecord], stats: StatsRecord, load_imbalance: float | None = None) -> Plan:
    fab = problem.fabric
    gpn = problem.gpus_per_node
    model = problem.model
    by_gpu: dict[int, list[int]] = {}
    for item, g in enumerate(np.asarray(item_gpu_I).tolist()):
        by_gpu.setdefault(g, []).append(item)
    placements = []
    layers = model.moe_layer_numbers
    for g in range(problem.num_gpus):
        node, local = divmod(g, gpn)
        items = sorted(by_gpu.get(g, []), key=lambda i: (int(problem.item_base_I[i]), int(problem.item_replica_I[i])))
        if not items:
            placements.append(Placement(rank=g, node=node, host=fab.hosts[node], local_gpu=local, layer=None,
                                        moe_layer=None, expert=None, replica=None))
        for item in items:
            ml, e = divmod(int(problem.item_base_I[item]), model.num_experts)
            placements.append(Placement(rank=g, node=node, host=fab.hosts[node], local_gpu=local, layer=layers[ml],
                                        moe_layer=ml, expert=e, replica=int(problem.item_replica_I[item])))
    return Plan(model=model, cluster=problem.cluster,
                topology=TopologyRecord(kind=fab.kind, description=fab.description, params=dict(fab.params),
                                        tier_labels=list(fab.tier_labels)),
                flow=FlowRecord(name=problem.flow, dedup=problem.dedup,
                                tier_costs=dict(zip(TIER_KEYS, problem.tier_costs.cost_T))),
                stats=stats, solver=solver, cost=cost_record(cost, fab.tier_labels, load_imbalance),
                baselines=baselines, balance_per_layer=problem.balance_per_layer, num_gpus=problem.num_gpus,
                placements=placements)


def plan_json(plan: Plan) -> str:
    return dumps_json(plan.model_dump(mode="json"))


def load_plan(path: str | Path) -> Plan:
    return load_document(path, PLAN_FORMAT, Plan, "plan")


def plan_schema() -> dict:
    schema = Plan.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://moeplace.dev/schema/plan-v1.json"
    return schema


