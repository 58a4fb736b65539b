"""The placement problem: items, slots, capacities, tier costs and traffic, as immutable arrays.

An assignment is `item_gpu_I` (int [items]): the GPU of every item. GPU g is `local = g % gpus_per_node` on
node `g // gpus_per_node`; node n is `fabric.hosts[n]`. Every solver, validator and report works on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from moeplace.errors import InfeasibleError
from moeplace.placement.schema import ClusterSpec, ModelSpec
from moeplace.placement.traffic import Traffic
from moeplace.topologies.base import Fabric, TierCosts


@dataclass(frozen=True, eq=False)
class Problem:
    model: ModelSpec
    cluster: ClusterSpec
    fabric: Fabric
    flow: str
    dedup: bool
    tier_costs: TierCosts
    traffic: Traffic
    balance_per_layer: bool = False
    item_base_I: np.ndarray | None = None
    item_replica_I: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.item_base_I is None:
            object.__setattr__(self, "item_base_I", np.arange(self.model.num_items))
            object.__setattr__(self, "item_replica_I", np.zeros(self.model.num_items, dtype=np.int64))
        for arr in (self.item_base_I, self.item_replica_I):
            arr.setflags(write=False)
        assert self.traffic.num_items == self.num_items, (self.traffic.num_items, self.num_items)
        extra = self.num_items - self.model.num_items
        if extra and self.experts_per_gpu != 1 and not _engine_layout(self.flow):
            raise InfeasibleError(f"replicas need one expert per GPU (experts_per_gpu is {self.experts_per_gpu}): "
                                  "with several experts per GPU, balance load by placement instead",
                                  field="--replicas")
        if self.fabric.num_nodes != self.cluster.num_nodes or self.fabric.gpus_per_node != self.cluster.gpus_per_node:
            raise InfeasibleError(f"fabric has {self.fabric.num_nodes} nodes x {self.fabric.gpus_per_node} GPUs, "
                                  f"cluster {self.cluster.num_nodes} x {self.cluster.gpus_per_node}")
        slots = self.num_gpus * self.experts_per_gpu
        if self.num_items > slots:
            copies = f" + {extra} replicas = {self.num_items}" if extra else ""
            raise InfeasibleError(
                f"{self.model.num_experts} experts x {self.model.num_moe_layers} MoE layers = "
                f"{self.model.num_items}{copies} experts do not fit {self.cluster.num_nodes} nodes x "
                f"{self.cluster.gpus_per_node} GPUs x {self.experts_per_gpu} experts per GPU = {slots} slots",
                field="cluster")
        if self.balance_per_layer:
            cap = self.layer_cap_per_gpu
            if cap * self.num_gpus < self.model.num_experts:
                raise InfeasibleError(f"balance per layer cannot hold: at most ceil({self.model.num_experts} / "
                                      f"{self.num_gpus}) = {cap} experts of a layer per GPU x {self.num_gpus} GPUs "
                                      f"= {cap * self.num_gpus} < {self.model.num_experts} experts per layer",
                                      field="balance_per_layer")

    @property
    def num_items(self) -> int:
        """Experts to place, copies included."""
        return int(self.item_base_I.shape[0]) if self.item_base_I is not None else self.model.num_items

    @property
    def num_replicas(self) -> int:
        """Extra copies beyond one per expert."""
        return self.num_items - self.model.num_items

    @property
    def num_gpus(self) -> int:
        return self.cluster.num_gpus

    @property
    def num_nodes(self) -> int:
        return self.cluster.num_nodes

    @property
    def gpus_per_node(self) -> int:
        return self.cluster.gpus_per_node

    @property
    def experts_per_gpu(self) -> int:
        return self.cluster.experts_per_gpu

    @property
    def node_capacity(self) -> int:
        return self.gpus_per_node * self.experts_per_gpu

    @property
    def item_layer_I(self) -> np.ndarray:
        """0-based MoE layer of every item."""
        return self.item_base_I // self.model.num_experts

    @property
    def item_expert_I(self) -> np.ndarray:
        return self.item_base_I % self.model.num_experts

    @property
    def layer_cap_per_gpu(self) -> int:
        """With balance per layer: at most ceil(experts per layer / GPUs) experts of one layer on a GPU."""
        return math.ceil(self.model.num_experts / self.num_gpus) if self.balance_per_layer else self.experts_per_gpu

    @property
    def gpu_node_G(self) -> np.ndarray:
        return np.arange(self.num_gpus) // self.gpus_per_node


def _engine_layout(flow: str) -> bool:
    """Whether the flow plans the engines' EP layout, where copies share GPUs (moeplace/ep/)."""
    from moeplace.placement.flows import get_flow

    return get_flow(flow).engine_layout
