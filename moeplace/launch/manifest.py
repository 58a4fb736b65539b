"""`manifest.json`: the one file the runtime reads, with a JSON Schema shared by planner and runtime.

Every worker process finds its entry by (host name, LOCAL_RANK) — never by RANK, which torchrun does not
keep stable across restarts — and learns from it which experts it runs, who its peers are, and the fixed
buffer sizes that keep every tensor shape static (for CUDA graphs).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from moeplace.placement.schema import ModelSpec


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExpertRef(_Frozen):
    moe_layer: int = Field(ge=0, description="0-based MoE layer index")
    layer: int = Field(ge=1, description="the model's 1-based layer number")
    expert: int = Field(ge=0)
    replica: int = Field(default=0, ge=0)


class RankEntry(_Frozen):
    rank: int = Field(ge=0, description="the plan's rank (process group rank the runtime uses)")
    host: str
    node: int = Field(ge=0)
    local_gpu: int = Field(ge=0, description="GPU index on the host; also the expected LOCAL_RANK")
    experts: list[ExpertRef] = Field(description="experts this rank runs (empty for a spare GPU)")


class Buffers(_Frozen):
    tokens_per_step: int = Field(gt=0, description="tokens entering the first MoE layer per step (whole world)")
    capacity_tokens_per_peer: int = Field(gt=0, description="fixed send/receive slots per peer per step")
    micro_batches: int = Field(default=2, ge=1, description="micro-batches in flight (overlap)")


class RoutingSource(_Frozen):
    kind: Literal["synthetic", "trace"] = "synthetic"
    seed: int = 0
    knobs: dict[str, float] = Field(default_factory=dict, description="synthetic generator knobs")
    trace_file: str | None = Field(default=None, description="trace path inside the manifest's folder (relative, "
                                   "no '..'): the runtime opens nothing outside it because of this name")

    @field_validator("trace_file")
    @classmethod
    def _inside(cls, v: str | None) -> str | None:
        return checked_trace_file(v)


def checked_trace_file(v: str | None) -> str | None:
    """`v` unchanged if it may be a trace_file (None included); ValueError naming why not (pydantic's validators)."""
    problem = None if v is None else trace_file_problem(v)
    if problem:
        raise ValueError(problem)
    return v


def trace_file_problem(name: str) -> str | None:
    """Why `name` cannot be a manifest's trace_file (None when it can): it must stay inside the folder."""
    p = PurePosixPath(name)
    if not name or len(name) > 1024 or not name.isprintable() or "\\" in name:
        return f"trace_file {name[:60]!r} must be a printable relative path of at most 1024 characters"
    if p.is_absolute() or ".." in p.parts:
        return (f"trace_file {name[:60]!r} must name a file inside the manifest's folder (no absolute path, "
                f"no '..'): the runtime opens nothing outside it")
    return None


class Timeouts(_Frozen):
    startup_s: float = Field(default=120.0, gt=0)
    collective_s: float = Field(default=60.0, gt=0)


class Manifest(_Frozen):
    format: Literal["moeplace.manifest"] = "moeplace.manifest"
    format_version: Literal[1] = 1
    plan_sha256: str = Field(description="sha256 of the plan.json this manifest was emitted from")
    model: ModelSpec
    flow: str
    dedup: bool
    world_size: int = Field(gt=0)
    gpus_per_node: int = Field(gt=0)
    hosts: list[str] = Field(description="node order; node i is hosts[i]")
    master_addr: str
    master_port: int = Field(gt=0, lt=65536)
    buffers: Buffers
    routing: RoutingSource
    timeouts: Timeouts = Field(default_factory=Timeouts)
    ranks: list[RankEntry]
