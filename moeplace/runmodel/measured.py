"""`measured.json` (rank 0's summary of a run) and the per-rank files: schemas and readers, no torch.

Times are medians over timed steps of the slowest rank (each step's maximum over ranks), after warm-up.
`layers` come from steps with a barrier before every layer (each layer timed alone); `step_us` from steps
with no barrier inside (micro-batches and layers overlap as they would in service).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from moeplace.fileio import load_document

MEASURED_FORMAT = "moeplace.measured"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Spread(_Frozen):
    median: float
    p10: float
    p90: float


class LayerTime(_Frozen):
    moe_layer: int = Field(ge=0)
    layer: int = Field(ge=1)
    us: Spread = Field(description="one layer alone (fill, experts, combine), slowest rank")
    tokens_in: int = Field(ge=0, description="tokens entering the layer per step")


class Check(_Frozen):
    rel_err: float
    tolerance: float
    passed: bool
    reference: str = "float64 single-process reference, same weights, routing and inputs"


class RankTime(_Frozen):
    rank: int
    host: str
    local_gpu: int
    step_us_median: float


class Measured(_Frozen):
    format: Literal["moeplace.measured"] = MEASURED_FORMAT
    format_version: Literal[1] = 1
    manifest_sha256: str
    plan_sha256: str
    model: dict
    flow: str
    world_size: int
    num_nodes: int
    gpus_per_node: int
    device: str
    backend: Literal["nccl", "gloo"]
    engine: str = Field(description="generic (per-peer transfers) or epstep (fused expert-parallel step)")
    transport: str = Field(default="p2p", description="p2p (torch.distributed send/recv), nccl-a2a or symm")
    dtype: str
    cuda_graphs: bool
    micro_batches: int
    tokens_per_step: int
    tokens_per_gpu: float
    routing_steps: int
    warmup_steps: int
    steps: int
    capacity_tokens_per_peer: int
    capacity_rows_per_peer: int | None = Field(
        default=None, ge=1, description="epstep: C, rows per peer per micro-batch of the [world x C] buffers it "
                                        "computes and sends whole (None: generic engine, or written before this field)")
    expert_rows_per_microbatch: float | None = Field(
        default=None, gt=0, description="epstep with the counted expert (`runtime.counted`): rows the busiest "
                                        "rank's expert runs on per micro-batch (the rows received, no padding); "
                                        "None: the expert ran on all W x C rows, or the generic engine")
    overflow_rows_per_step: float
    layers: list[LayerTime]
    step_us: Spread = Field(description="one whole step through every MoE layer, no barrier inside")
    tokens_per_s: float
    bytes_per_step: dict[str, float] = Field(description="payload moved per step: nvlink (same node), network")
    dedup: Literal["node", "gpu"] | None = Field(
        default=None, description="node: one network crossing per (token, remote node), then NVLink (the generic "
                                  "engine under a plan with dedup); gpu: GPU-to-GPU transfers; None: written before")
    node_pairs: list[tuple[int, int, float]] = Field(description="(source node, destination node, bytes per step)")
    check: Check | None = None
    software: dict[str, str] = Field(default_factory=dict)
    measured_at: str
    ranks: list[RankTime]


def spread(values_us) -> Spread:
    v = np.asarray(values_us, dtype=np.float64)
    return Spread(median=round(float(np.median(v)), 3), p10=round(float(np.percentile(v, 10)), 3),
                  p90=round(float(np.percentile(v, 90)), 3))


def load_measured(path: str | Path) -> Measured:
    return load_document(path, MEASURED_FORMAT, Measured, "measurement")
