"""What the cost model predicts for: a deployment (one instance's plan, replicated) and a workload.

A deployment is one model instance placed on its GPUs (`problem` + `item_gpu_I`) and `instances`
data-parallel replicas of it. Its design follows the flow model:

    chain   expert per GPU (the seed): the GPUs of MoE layer l form pipeline stage l; attention of layer l
            runs on stage l's GPUs (data-parallel by sequence, each holding the KV cache of its sequences);
            the dense layers, the embedding and the output head run on stage 0's GPUs.
    ep      classic expert parallelism: every GPU of the instance runs every layer; attention is
            data-parallel over the instance's GPUs (a token's home holds its KV cache and attention
            weights of every layer); the MoE layer dispatches to the experts and combines at home.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from moeplace.costmodel.profile import HardwareProfile
from moeplace.errors import InputError
from moeplace.placement.flows import FlowModel, get_flow
from moeplace.placement.problem import Problem
from moeplace.traces.stats import RoutingStats

Phase = Literal["decode", "prefill"]


@dataclass(frozen=True)
class Workload:
    """`batch` sequences in flight on the deployment (all instances together); `seq_len` is the context of
    each sequence in decode (its KV cache) and the prompt length in prefill."""

    phase: Phase
    batch: int
    seq_len: int

    def __post_init__(self) -> None:
        if self.phase not in ("decode", "prefill"):
            raise InputError(f"phase must be decode or prefill, got {self.phase!r}", field="phase")
        if self.batch < 1:
            raise InputError(f"must be at least 1, got {self.batch}", field="batch")
        if self.seq_len < 1:
            raise InputError(f"must be at least 1, got {self.seq_len}", field="seq_len")

    @property
    def tokens_per_sequence(self) -> int:
        """Tokens one sequence puts through the model per step: 1 in decode, the prompt in prefill."""
        return 1 if self.phase == "decode" else self.seq_len

    def label(self) -> str:
        what = "context" if self.phase == "decode" else "prompt"
        return f"{self.phase}, batch {self.batch}, {what} {self.seq_len}"


@dataclass(frozen=True)
class Options:
    """Knobs of the cost model that are not hardware; every report lists them.

    dense_ffn_hidden  hidden width of a dense layer's MLP (None: the expert's; the seed gives only 2048)
    vocab_size        embedding and output head rows (0: not modelled; the seed gives no vocabulary)
    reserve_gb        GPU memory no model state may use (CUDA context, NCCL, allocator slack)
    overlap           transfers overlap compute where the design allows (chain: across micro-batches in
                      the pipeline; ep: two micro-batches per layer); the pass of one token never overlaps
    attention_hop     chain only: charge the detour through each stage's attention home (honest); False
                      charges the chain flow's transfers alone (the seed's reading: attention for free)
    micro_batches     chain decode: micro-batches in the pipeline (None: the best of powers of two up to
                      the number of stages)
    dense_layers      chain only: `spread` runs dense layer j on stage j's GPUs (one extra hop each, no
                      stage carries more than one dense layer); `first-stage` runs them all on stage 0
    """

    dense_ffn_hidden: int | None = None
    vocab_size: int = 0
    reserve_gb: float = 2.0
    overlap: bool = True
    attention_hop: bool = True
    micro_batches: int | None = None
    dense_layers: Literal["spread", "first-stage"] = "spread"

    def __post_init__(self) -> None:
        if self.dense_layers not in ("spread", "first-stage"):
            raise InputError(f"must be spread or first-stage, got {self.dense_layers!r}", field="dense_layers")
        if self.micro_batches is not None and self.micro_batches < 1:
            raise InputError(f"must be at least 1, got {self.micro_batches}", field="micro_batches")
        if self.reserve_gb < 0:
            raise InputError(f"must be >= 0, got {self.reserve_gb}", field="reserve_gb")

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True, eq=False)
class Deployment:
    """ep_attention (ep only): `dp`, data-parallel attention at each token's home (the ep flow), or `tp`,
    attention and dense MLPs tensor-parallel over the instance's GPUs (one node), with an all-reduce after
    attention and one after the experts in place of dispatch and combine."""

    name: str
    problem: Problem
    item_gpu_I: np.ndarray
    stats: RoutingStats
    instances: int = 1
    source: str = ""
    ep_attention: Literal["dp", "tp"] = "dp"

    def __post_init__(self) -> None:
        if self.ep_attention not in ("dp", "tp"):
            raise InputError(f"must be dp or tp, got {self.ep_attention!r}", field="ep_attention")
        flow = get_flow(self.problem.flow)
        if self.ep_attention == "tp" and (not flow.tensor_parallel_attention or self.problem.num_nodes != 1):
            raise InputError("tensor-parallel attention is modelled for ep instances inside one node "
                             f"(got flow {self.problem.flow}, {self.problem.num_nodes} nodes)", field="ep_attention")
        if self.instances < 1:
            raise InputError(f"must be at least 1, got {self.instances}", field="instances")

    @property
    def flow(self) -> str:
        return self.problem.flow

    @property
    def flow_model(self) -> FlowModel:
        """The flow's `FlowModel`: how the cost model runs it."""
        return get_flow(self.problem.flow)

    @property
    def tensor_parallel(self) -> int:
        """GPUs that share one attention (1: data-parallel attention)."""
        return self.problem.num_gpus if self.ep_attention == "tp" else 1

    @property
    def gpus_per_instance(self) -> int:
        return self.problem.num_gpus

    @property
    def num_gpus(self) -> int:
        return self.gpus_per_instance * self.instances

    @property
    def experts_per_gpu_per_layer(self) -> int:
        """The most experts of one MoE layer on one GPU."""
        L, E = self.problem.model.num_moe_layers, self.problem.model.num_experts
        layer = np.repeat(np.arange(L), E)
        per = np.zeros((self.problem.num_gpus, L), dtype=np.int64)
        np.add.at(per, (np.asarray(self.item_gpu_I), layer), 1)
        return int(per.max())

    def dense_stage_D(self, options: Options) -> np.ndarray:
        """chain: the stage (MoE layer index) whose GPUs run each dense layer."""
        D, L = len(self.problem.model.dense_layers), self.problem.model.num_moe_layers
        if options.dense_layers == "first-stage" or D > L:
            return np.zeros(D, dtype=np.int64)
        return np.arange(D, dtype=np.int64)

    def active(self, workload: Workload) -> tuple[int, int]:
        """(instances that hold sequences, sequences on the busiest instance)."""
        active = min(self.instances, workload.batch)
        return active, math.ceil(workload.batch / active)


def nominal_peak_tflops(profile: HardwareProfile, deployment: Deployment) -> float:
    return profile.peak_bf16_tflops or deployment.problem.cluster.gpu.bf16_tflops
