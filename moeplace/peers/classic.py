"""The classic layout of expert parallelism: several experts per GPU, every layer spread evenly.

On a problem with `experts_per_gpu = c` and balance per layer (at most `cap = layer_cap_per_gpu` experts of
one layer on a GPU), each MoE layer is split over an expert-parallel group of D = ceil(E / cap) GPUs,
rank r holding experts [r * cap, (r + 1) * cap) (Megatron/DeepSpeed/vLLM order). Layers are grouped as
pipeline stages:

    stage layout   S = c // cap consecutive layers share one group of D GPUs (GPU = stage * D + rank), used
                   when ceil(L / S) * D <= GPUs: the usual pipeline-parallel x expert-parallel layout;
    wrap layout    otherwise layer l takes the next D GPUs after layer l-1, wrapping around the GPUs
                   (GPU = (l * D + rank) mod GPUs): every GPU still holds at most `cap` experts of a layer
                   and c in all, but a stage is no longer a fixed group.

Without balance per layer (cap = c) both are layer-major contiguous. `classic_cluster` sizes the cluster
for the stage layout at a given c: the 4-8-experts-per-GPU baseline of the brief at equal model size.
"""

from __future__ import annotations

import math

import numpy as np

from moeplace.peers.registry import register_peer
from moeplace.peers.simple import feasible
from moeplace.placement.problem import Problem
from moeplace.placement.schema import ClusterSpec, ModelSpec


def classic_shape(num_experts: int, num_layers: int, experts_per_gpu: int, layer_cap: int) -> tuple[int, int, int]:
    """(D GPUs per layer, S layers per stage, stages)."""
    D = math.ceil(num_experts / layer_cap)
    S = max(1, experts_per_gpu // layer_cap)
    return D, S, math.ceil(num_layers / S)


@register_peer("classic", "expert parallel x pipeline stages: each layer split evenly over D GPUs, "
               "experts_per_gpu // cap layers per stage (the 4-8-experts-per-GPU layout)")
def classic_layout(problem: Problem, seed: int = 0) -> np.ndarray:
    E, L, G = problem.model.num_experts, problem.model.num_moe_layers, problem.num_gpus
    cap = problem.layer_cap_per_gpu
    D, S, stages = classic_shape(E, L, problem.experts_per_gpu, cap)
    layer, rank = problem.item_layer_I, problem.item_expert_I // cap
    if stages * D <= G:
        gpu = (layer // S) * D + rank
    else:
        gpu = (layer * D + rank) % G
    return feasible(problem, gpu.astype(np.int64))


def classic_cluster(model: ModelSpec, cluster: ClusterSpec, experts_per_gpu: int) -> ClusterSpec:
    """`cluster` with c experts per GPU and just enough nodes for the stage layout (balance per layer on)."""
    E, L = model.num_experts, model.num_moe_layers
    nodes = max(1, math.ceil(model.num_items / (experts_per_gpu * cluster.gpus_per_node)))
    gpus = nodes * cluster.gpus_per_node
    cap = math.ceil(E / gpus)
    D, _, stages = classic_shape(E, L, experts_per_gpu, cap)
    nodes = max(nodes, math.ceil(stages * D / cluster.gpus_per_node))
    return cluster.model_copy(update={"num_nodes": nodes, "experts_per_gpu": experts_per_gpu, "hosts": None})
