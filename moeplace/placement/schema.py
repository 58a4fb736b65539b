"""Model and cluster specifications (pydantic v2, frozen), validated at the edge.

Inside the library these are read-only; arrays derived from them live in `Problem`. Every constant of the
hardware is a field with a unit in its name, so that reports can name the preset and the numbers they used.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from moeplace.topologies.specs import TOPOLOGY_CLASSES, DragonflyPlusSpec, FatTreeSpec, TopologySpec  # noqa: F401

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


MAX_NAME = 200


def check_name(v: str) -> str:
    """A model or cluster name: printable text (no newline or other control character), at most 200 characters.

    Names are written into `#` lines of launch scripts; a newline there would start a line of shell code.
    """
    if len(v) > MAX_NAME:
        raise ValueError(f"name {v[:40]!r}... is {len(v)} characters, at most {MAX_NAME}")
    if not v.isprintable():
        raise ValueError(f"name {v!r} has a control character (newline, tab, ...)")
    return v


class ModelSpec(_Frozen):
    """A Mixture-of-Experts transformer: which layers are MoE, how many experts, their dimensions."""

    name: str = "custom"
    num_layers: int = Field(gt=0, le=4096, description="transformer layers, dense and MoE")
    dense_layers: tuple[int, ...] = Field(default=(), description="1-based numbers of the dense (non-MoE) layers")
    num_experts: int = Field(gt=1, le=4_096, description="routed experts per MoE layer")
    num_shared_experts: int = Field(default=0, ge=0, description="always-active experts per MoE layer (not placed)")
    top_k: int = Field(gt=0, description="routed experts each token chooses per MoE layer")
    hidden: int = Field(gt=0, description="model (token vector) width")
    expert_hidden: int = Field(gt=0, description="hidden width of one expert's MLP")
    activation: Literal["swiglu", "mlp"] = "swiglu"
    num_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    num_kv_heads: int | None = Field(default=None, gt=0, description="grouped-query KV heads (None: num_heads)")
    dtype: Literal["bf16", "fp16", "fp32", "fp8"] = "bf16"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v)

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        bad = [x for x in self.dense_layers if not 1 <= x <= self.num_layers]
        if bad:
            raise ValueError(f"dense_layers {bad} outside 1..num_layers={self.num_layers}")
        if len(set(self.dense_layers)) != len(self.dense_layers):
            raise ValueError(f"dense_layers {list(self.dense_layers)} has duplicates")
        if not self.moe_layer_numbers:
            raise ValueError("the model has no MoE layer (every layer is dense)")
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k={self.top_k} exceeds num_experts={self.num_experts}")
        return self

    @property
    def moe_layer_numbers(self) -> tuple[int, ...]:
        """1-based model layer numbers of the MoE layers, in order (4..61 for the seed)."""
        dense = set(self.dense_layers)
        return tuple(x for x in range(1, self.num_layers + 1) if x not in dense)

    @property
    def num_moe_layers(self) -> int:
        return len(self.moe_layer_numbers)

    @property
    def num_items(self) -> int:
        """Routed experts to place: experts per MoE layer times MoE layers (1,856 for the seed)."""
        return self.num_experts * self.num_moe_layers

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def token_bytes(self) -> int:
        """Bytes of one token vector on the wire: hidden × dtype bytes (14,336 B for the seed)."""
        return self.hidden * self.dtype_bytes

    @property
    def expert_params(self) -> int:
        mats = 3 if self.activation == "swiglu" else 2
        return mats * self.hidden * self.expert_hidden


class GpuSpec(_Frozen):
    """One GPU's headline numbers; the cost model derives its roofline from these."""

    name: str
    memory_gb: float = Field(gt=0)
    bf16_tflops: float = Field(gt=0, description="dense BF16 peak, TFLOP/s")
    hbm_tbps: float = Field(gt=0, description="HBM bandwidth, TB/s")
    nvlink_gbps: float = Field(gt=0, description="NVLink bandwidth per GPU per direction, GB/s (bytes)")
    target_mfu: float = Field(default=0.6, gt=0, le=1)
    target_bw_util: float = Field(default=0.8, gt=0, le=1)


class ClusterSpec(_Frozen):
    """GPUs, nodes, the network between them, and how many experts a GPU holds."""

    name: str = "custom"
    num_nodes: int = Field(gt=0, le=65_536)
    gpus_per_node: int = Field(gt=0, le=1_024)
    experts_per_gpu: int = Field(default=1, gt=0, le=1_024, description="expert slots per GPU (1 in the seed design)")
    gpu: GpuSpec
    nic_gbps: float = Field(gt=0, description="bandwidth of one NIC, Gb/s (bits)")
    nics_per_node: int = Field(gt=0)
    latency_intra_node_us: float = Field(ge=0)
    latency_inter_node_us: float = Field(ge=0)
    topology: TopologySpec = Field(default_factory=FatTreeSpec)
    hosts: str | None = Field(default=None, description="host names, a Slurm hostlist such as gpu[001-232]")
    node_name_map: str | None = Field(default=None, description="ibnetdiscover node name map file (GUID \"name\" "
                                                                "per line) naming the nodes of an ibnetdiscover file")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v)

    @model_validator(mode="before")
    @classmethod
    def _switch_topology_kind(cls, data):
        """A file that sets `topology.kind` over a preset of the other kind keeps none of its defaults."""
        topo = data.get("topology") if isinstance(data, dict) else None
        if isinstance(topo, dict) and topo.get("kind") in TOPOLOGY_CLASSES:
            target = TOPOLOGY_CLASSES[topo["kind"]]
            others = [c for c in TOPOLOGY_CLASSES.values() if c is not target]
            stale = {k for k, v in topo.items() if k not in target.model_fields and any(
                k in o.model_fields and o.model_fields[k].default == v for o in others)}
            if stale:
                data = {**data, "topology": {k: v for k, v in topo.items() if k not in stale}}
        return data

    @property
    def num_gpus(self) -> int:
        return self.num_nodes * self.gpus_per_node

    @property
    def num_slots(self) -> int:
        return self.num_gpus * self.experts_per_gpu

    @property
    def nic_gbytes_per_gpu(self) -> float:
        """Network bandwidth available per GPU in GB/s (bytes), NICs shared evenly."""
        return self.nic_gbps / 8.0 * self.nics_per_node / self.gpus_per_node
