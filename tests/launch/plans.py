"""Small hand-made plans for the launch tests: explicit placements, no solver, so goldens depend on launch only."""

from __future__ import annotations

from moeplace.placement.plan import (
    CostRecord,
    FlowRecord,
    Placement,
    Plan,
    SolverRecord,
    StatsRecord,
    TopologyRecord,
)
from moeplace.placement.schema import ClusterSpec, GpuSpec, ModelSpec

GPU = GpuSpec(name="test GPU", memory_gb=80, bf16_tflops=989, hbm_tbps=3.35, nvlink_gbps=450)


def make_plan(*, hosts: list[str], gpus_per_node: int, rank_items: dict[int, list[tuple[int, int]]],
              num_layers: int = 3, dense_layers: tuple[int, ...] = (1,), num_experts: int = 4,
              experts_per_gpu: int = 1, flow: str = "chain", name: str = "tiny-test",
              provenance: dict | None = None) -> Plan:
    """A plan whose rank r (node-major) holds the (moe_layer, expert) items `rank_items[r]`; others are idle."""
    model = ModelSpec(name=name, num_layers=num_layers, dense_layers=dense_layers, num_experts=num_experts,
                      top_k=2, hidden=16, expert_hidden=8, num_heads=2, head_dim=8)
    cluster = ClusterSpec(name="test", num_nodes=len(hosts), gpus_per_node=gpus_per_node,
                          experts_per_gpu=experts_per_gpu, gpu=GPU, nic_gbps=400, nics_per_node=gpus_per_node,
                          latency_intra_node_us=1, latency_inter_node_us=3)
    layers = model.moe_layer_numbers
    placements = []
    for rank in range(len(hosts) * gpus_per_node):
        node, local = divmod(rank, gpus_per_node)
        items = sorted(rank_items.get(rank, []))
        if not items:
            placements.append(Placement(rank=rank, node=node, host=hosts[node], local_gpu=local, layer=None,
                                        moe_layer=None, expert=None, replica=None))
        for ml, e in items:
            placements.append(Placement(rank=rank, node=node, host=hosts[node], local_gpu=local, layer=layers[ml],
                                        moe_layer=ml, expert=e, replica=0))
    prov = provenance or {"source": "synthetic", "skew": 0.35, "coact": 0.3, "affinity": 0.5, "cluster_size": 4,
                          "seed": 3, "num_tokens": 1024}
    return Plan(model=model, cluster=cluster,
                topology=TopologyRecord(kind="fat-tree", description="test fabric", params={},
                                        tier_labels=["same_gpu", "nvlink", "leaf", "pod", "core"]),
                flow=FlowRecord(name=flow, dedup=True, tier_costs={"same_gpu": 0.0, "nvlink": 0.1, "leaf": 1.0,
                                                                 "pod": 2.0, "core": 3.0}),
                stats=StatsRecord(num_tokens=1024, provenance=prov),
                solver=SolverRecord(name="hand", status="feasible", objective=1.0, bound=0.5, gap=0.5, seed=3,
                                    time_limit_s=1.0, work=0.0, stop_reason="given", moeplace_version="test"),
                cost=CostRecord(objective=1.0, cross_node_bytes_per_token=1.0, bytes_per_token_by_tier={},
                                bytes_per_token_by_kind={}),
                baselines={}, balance_per_layer=flow == "ep", num_gpus=len(hosts) * gpus_per_node,
                placements=placements)


def chain_plan(hosts: list[str] | None = None) -> Plan:
    """2 MoE layers x 4 experts, one per GPU, on 3 nodes x 3 GPUs: layers mixed on nodes, rank 8 idle."""
    items = [(1, 2), (0, 0), (0, 3), (1, 0), (0, 1), (1, 3), (0, 2), (1, 1)]
    return make_plan(hosts=hosts or ["node001", "node002", "node003"], gpus_per_node=3,
                     rank_items={r: [it] for r, it in enumerate(items)})


def ep_plan(hosts: list[str] | None = None) -> Plan:
    """Classic EP: 2 nodes x 2 GPUs, every GPU one expert of each of the 2 MoE layers (engines run it)."""
    rank_items = {0: [(0, 2), (1, 1)], 1: [(0, 0), (1, 3)], 2: [(0, 3), (1, 0)], 3: [(0, 1), (1, 2)]}
    return make_plan(hosts=hosts or ["gpu07", "gpu08"], gpus_per_node=2, rank_items=rank_items, experts_per_gpu=2,
                     flow="ep", name="tiny-ep")


def local_plan(host: str, gpus: int = 4) -> Plan:
    """One node (this host) x `gpus` GPUs: 2 MoE layers x `gpus // 2` experts, one expert per GPU."""
    half = gpus // 2
    items = [(ml, e) for e in range(half) for ml in range(2)]
    return make_plan(hosts=[host], gpus_per_node=gpus, num_experts=half,
                     rank_items={r: [it] for r, it in enumerate(items)})
