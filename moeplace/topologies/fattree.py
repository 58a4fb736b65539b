"""Fat-tree fabrics as the planner sees them: nodes under leaves, leaves under pods, pods under a core."""

from __future__ import annotations

import numpy as np

from moeplace.errors import InputError
from moeplace.topologies.base import Fabric, default_hosts, tiers_from_positions


def fat_tree(num_nodes: int, gpus_per_node: int, *, nodes_per_leaf: int, leaves_per_pod: int,
             hosts: tuple[str, ...] | None = None) -> Fabric:
    """A three-tier tree: consecutive nodes fill a leaf, consecutive leaves fill a pod.

    With a rail-optimized design `nodes_per_leaf` is the rail group (scalable unit): every node of the group
    reaches every other through one rail leaf, NVLink moving data to the rail-matched GPU first.
    """
    if nodes_per_leaf <= 0 or leaves_per_pod <= 0:
        raise InputError(f"nodes_per_leaf={nodes_per_leaf} and leaves_per_pod={leaves_per_pod} must be positive",
                         field="topology")
    node = np.arange(num_nodes)
    leaf = node // nodes_per_leaf
    pod = leaf // leaves_per_pod
    if hosts is None:
        hosts = default_hosts(num_nodes)
    num_leaves = int(leaf.max()) + 1
    num_pods = int(pod.max()) + 1
    desc = (f"fat-tree: {num_nodes} nodes, {nodes_per_leaf} per leaf ({num_leaves} leaves), "
            f"{leaves_per_pod} leaves per pod ({num_pods} pods)")
    return Fabric(kind="fat-tree", description=desc, gpus_per_node=gpus_per_node,
                  node_tier_NN=tiers_from_positions(leaf, pod), node_leaf_N=leaf, node_pod_N=pod, hosts=hosts,
                  tier_labels=("same_gpu", "nvlink", "leaf", "pod", "core"),
                  params={"nodes_per_leaf": nodes_per_leaf, "leaves_per_pod": leaves_per_pod})
