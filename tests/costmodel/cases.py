"""Small deployments whose predictions can be checked by hand."""

from __future__ import annotations

import numpy as np

from moeplace.costmodel.deployment import Deployment
from moeplace.costmodel.profile import HardwareProfile
from moeplace.placement.builder import build_fabric, default_tier_costs
from moeplace.placement.flows import build_traffic
from moeplace.placement.problem import Problem
from moeplace.placement.schema import ClusterSpec, GpuSpec, ModelSpec
from moeplace.traces.stats import RoutingStats

GPU = GpuSpec(name="test GPU", memory_gb=10, bf16_tflops=200, hbm_tbps=1.0, nvlink_gbps=100)


def profile(**over) -> HardwareProfile:
    """Round numbers: 100 TFLOP/s and 1 TB/s achievable, 10 GB/s of network per GPU, 5 us network latency,
    3 us floor per transfer step, 2 us fixed per kernel block."""
    base = dict(name="test", source="preset", device="test GPU", bf16_tflops=100.0, peak_bf16_tflops=200.0,
                hbm_tbps=1.0, memory_gb=10.0, nvlink_gbps=100.0, nvlink_latency_us=1.0, nic_gbps_per_gpu=10.0,
                network_latency_us=5.0, kernel_overhead_us=2.0, transfer_floor_us=3.0)
    base.update(over)
    return HardwareProfile(**base)


def model(num_moe_layers: int = 1, num_experts: int = 2, top_k: int = 1, dense: int = 0) -> ModelSpec:
    """hidden 1024 (2,048 B per token), expert hidden 512 (3,145,728 B of weights), 8 heads x 128."""
    return ModelSpec(name="hand", num_layers=num_moe_layers + dense, dense_layers=tuple(range(1, dense + 1)),
                     num_experts=num_experts, top_k=top_k, hidden=1024, expert_hidden=512, activation="swiglu",
                     num_heads=8, head_dim=128, dtype="bf16")


def cluster(nodes: int, gpus_per_node: int, experts_per_gpu: int = 1) -> ClusterSpec:
    return ClusterSpec(name="hand", num_nodes=nodes, gpus_per_node=gpus_per_node, experts_per_gpu=experts_per_gpu,
                       gpu=GPU, nic_gbps=80.0, nics_per_node=gpus_per_node, latency_intra_node_us=1.0,
                       latency_inter_node_us=5.0)


def stats_from_paths(paths_TLK: np.ndarray, num_experts: int) -> RoutingStats:
    return RoutingStats.from_paths(np.asarray(paths_TLK, dtype=np.int32), num_experts, keep_paths=None)


def deployment(m: ModelSpec, c: ClusterSpec, stats: RoutingStats, flow: str, item_gpu: list[int], *,
               instances: int = 1, ep_attention: str = "dp", balance: bool = False) -> Deployment:
    fabric = build_fabric(c)
    problem = Problem(model=m, cluster=c, fabric=fabric, flow=flow, dedup=True,
                      tier_costs=default_tier_costs(c, fabric), traffic=build_traffic(flow, stats, m, dedup=True),
                      balance_per_layer=balance)
    return Deployment(name=f"{flow} test", problem=problem, item_gpu_I=np.asarray(item_gpu, dtype=np.int64),
                      stats=stats, instances=instances, ep_attention=ep_attention)


def one_layer_two_gpus(flow: str = "ep") -> Deployment:
    """One MoE layer, 2 experts, top-1, on 2 nodes x 1 GPU; 3 of 4 tokens choose expert 0."""
    m = model()
    paths = np.array([[[0]], [[0]], [[0]], [[1]]])
    return deployment(m, cluster(2, 1), stats_from_paths(paths, 2), flow, [0, 1])
