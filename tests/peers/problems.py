"""Small problems for the peers: 8 experts x 3 MoE layers (24 items), top-2, on 4-GPU nodes."""

from __future__ import annotations

from moeplace.placement.builder import build_problem
from moeplace.placement.presets import load_cluster, load_model
from moeplace.topologies.base import TierCosts
from moeplace.traces.synth import synthesize


def small_problem(flow="chain", experts_per_gpu=1, *, affinity=0.6, seed=0, balance=False, path_seed=None,
                  nodes=None):
    model = load_model(None, name="small", num_layers=4, dense_layers=[1], num_experts=8, top_k=2, hidden=64,
                       expert_hidden=32, num_heads=1, head_dim=64)
    gpn = 4
    nodes = nodes or 24 // (gpn * experts_per_gpu)
    cluster = load_cluster(None, num_nodes=nodes, gpus_per_node=gpn, experts_per_gpu=experts_per_gpu,
                           topology={"nodes_per_leaf": 2, "leaves_per_pod": 1})
    stats = synthesize(3, 8, 2, num_tokens=512, affinity=affinity, seed=seed, path_seed=path_seed)
    return build_problem(model, cluster, stats, flow=flow, balance_per_layer=balance,
                         tier_costs=TierCosts((0, 0.05, 1, 2, 3)))
