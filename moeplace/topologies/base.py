"""The array view of a fabric that the problem, the objective and the solvers use.

Tiers are indices into a fixed ladder, cheapest first:

    0 same_gpu   the transfer stays in one GPU's memory
    1 nvlink     same node, over NVLink/NVSwitch
    2 leaf       different nodes under one leaf switch (or one rail group)
    3 pod        one pod of a fat-tree, one group of a Dragonfly+
    4 core       across the core of a fat-tree, over a global link of a Dragonfly+

A fabric labels the upper tiers in its own words (`tier_labels`), and maps every ordered node pair to a
tier (`node_tier_NN`); the tier of a GPU pair follows from it (same GPU, same node, or the nodes' tier).

Rail-optimized fabrics (NIC r of every node of a scalable unit on the unit's rail-r leaf) are represented
at node level as if PXN is on (NCCL's default): a transfer to another node first moves over NVLink to the
local GPU on the destination NIC's rail, then crosses the fabric on that rail, so two nodes of one unit are
TIER_LEAF apart whatever the GPUs. The extra NVLink hop, and the path without PXN, are in the GPU-level
view (`moeplace.topologies.gpuview`). The physical fabric (hosts, switches, links, the networkx graph)
is `Fabric.network`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from moeplace.topologies.network import Network

TIER_SAME_GPU, TIER_NVLINK, TIER_LEAF, TIER_POD, TIER_CORE = range(5)
NUM_TIERS = 5
TIER_KEYS = ("same_gpu", "nvlink", "leaf", "pod", "core")


@dataclass(frozen=True)
class TierCosts:
    """Cost of one byte at each tier, in leaf-byte equivalents (a byte through one leaf switch costs 1).

    The default (`moeplace.placement.builder.default_tier_costs`) is hop-bytes normalised to one leaf
    crossing (host-leaf-host = 2 links = 1.0; via a pod spine 4 links = 2.0; via the core 6 links = 3.0),
    and NVLink costs the ratio of the per-GPU network bandwidth to the NVLink bandwidth, so that a byte
    kept inside a node is cheap but not free.
    """

    cost_T: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.cost_T) != NUM_TIERS:
            raise ValueError(f"tier costs need {NUM_TIERS} values, got {len(self.cost_T)}")
        if any(b < a for a, b in zip(self.cost_T, self.cost_T[1:])):
            raise ValueError(f"tier costs must not decrease up the ladder, got {list(self.cost_T)}")
        if self.cost_T[0] != 0.0:
            raise ValueError("a same-GPU transfer costs 0")

    def with_overrides(self, **named: float) -> TierCosts:
        costs = list(self.cost_T)
        for key, value in named.items():
            costs[TIER_KEYS.index(key)] = float(value)
        return TierCosts(tuple(costs))

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.cost_T, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Fabric:
    """Nodes placed in a network: positions, hosts and the node-pair tier matrix.

    node_tier_NN: int8 [nodes, nodes], TIER_NVLINK on the diagonal, >= TIER_LEAF elsewhere, symmetric.
    node_leaf_N, node_pod_N: int [nodes], the leaf (or rail group) and pod (or Dragonfly+ group) of a node.
    network: the hosts, switches and links (None for a fabric given by positions only).
    """

    kind: str
    description: str
    gpus_per_node: int
    node_tier_NN: np.ndarray
    node_leaf_N: np.ndarray
    node_pod_N: np.ndarray
    hosts: tuple[str, ...]
    tier_labels: tuple[str, ...] = TIER_KEYS
    params: dict = field(default_factory=dict)
    network: Network | None = None

    def __post_init__(self) -> None:
        n = self.num_nodes
        assert self.node_tier_NN.shape == (n, n), self.node_tier_NN.shape
        assert self.node_leaf_N.shape == (n,) and self.node_pod_N.shape == (n,)
        assert len(self.hosts) == n, (len(self.hosts), n)
        assert np.all(np.diag(self.node_tier_NN) == TIER_NVLINK)
        if self.network is not None:
            assert self.network.hosts == self.hosts and self.network.gpus_per_node == self.gpus_per_node
        for arr in (self.node_tier_NN, self.node_leaf_N, self.node_pod_N):
            arr.setflags(write=False)

    @property
    def num_nodes(self) -> int:
        return int(self.node_tier_NN.shape[0])

    @property
    def num_gpus(self) -> int:
        return self.num_nodes * self.gpus_per_node

    def gpu_tier(self, gpu_a: np.ndarray | int, gpu_b: np.ndarray | int) -> np.ndarray:
        """Tier of GPU pairs (vectorised); GPU g sits on node g // gpus_per_node."""
        a = np.asarray(gpu_a)
        b = np.asarray(gpu_b)
        tier = self.node_tier_NN[a // self.gpus_per_node, b // self.gpus_per_node].astype(np.int8)
        return np.where(a == b, np.int8(TIER_SAME_GPU), tier)

    @cached_property
    def node_hops_NN(self) -> np.ndarray:
        """int16 [nodes, nodes]: links crossed between two nodes (0 on the diagonal); from the network, or
        2 / 4 / 6 for leaf / pod / core without one."""
        if self.network is not None:
            return self.network.node_hops_NN
        hops = np.array([0, 0, 2, 4, 6], dtype=np.int16)[self.node_tier_NN]
        return hops

    @property
    def diameter_hops(self) -> int:
        """The most links between two nodes."""
        return int(self.node_hops_NN.max())

    @property
    def nics_per_node(self) -> int:
        return self.network.nics_per_node if self.network is not None else 1

    def gpu_nic(self, local_gpu: np.ndarray | int) -> np.ndarray:
        """NIC index a local GPU sends through: GPU i of G uses NIC i * R // G (NIC i when R == G)."""
        return np.asarray(local_gpu) * self.nics_per_node // self.gpus_per_node

    def level_capacities(self) -> list[tuple[int, int]]:
        """[(tier, max nodes sharing a domain below that tier)] for the lower bound, for tiers leaf..core.

        The domain below TIER_LEAF is one node; below TIER_POD a leaf's nodes; below TIER_CORE a pod's nodes.
        """
        leaf_sizes = np.bincount(self.node_leaf_N)
        pod_sizes = np.bincount(self.node_pod_N)
        return [(TIER_LEAF, 1), (TIER_POD, int(leaf_sizes.max())), (TIER_CORE, int(pod_sizes.max()))]


def count(n: int, word: str, plural: str | None = None) -> str:
    """"1 unit", "12 units", "1 leaf", "96 leaves"."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


def default_hosts(num_nodes: int, prefix: str = "node") -> tuple[str, ...]:
    width = max(3, len(str(num_nodes)))
    return tuple(f"{prefix}{i + 1:0{width}d}" for i in range(num_nodes))


def tiers_from_positions(node_leaf_N: np.ndarray, node_pod_N: np.ndarray) -> np.ndarray:
    """Tier matrix of a three-level tree from each node's leaf and pod."""
    same_leaf = node_leaf_N[:, None] == node_leaf_N[None, :]
    same_pod = node_pod_N[:, None] == node_pod_N[None, :]
    tier = np.full(same_leaf.shape, TIER_CORE, dtype=np.int8)
    tier[same_pod] = TIER_POD
    tier[same_leaf] = TIER_LEAF
    np.fill_diagonal(tier, TIER_NVLINK)
    return tier


DRAGONFLY_LABELS = ("same_gpu", "nvlink", "leaf", "group", "global")


def fabric_from_network(network: Network, *, kind: str, description: str, params: dict,
                        source: str | None = None, labels: tuple[str, ...] | None = None) -> Fabric:
    """A `Fabric` whose positions and tiers follow from the network's links (see `network.positions`);
    tiers 3 and 4 are labelled group/global when links join switches of one level (or `labels` says so)."""
    from moeplace.errors import InputError
    from moeplace.topologies.network import UNREACHABLE

    hops = network.node_hops_NN
    bad = np.argwhere(hops >= UNREACHABLE)
    if bad.size:
        a, b = (network.hosts[int(i)] for i in bad[0])
        raise InputError(f"hosts {a} and {b} are not connected by any path of switches", source=source)
    unit, pod, _ = network.positions
    labels = labels or (DRAGONFLY_LABELS if network.has_global_links else TIER_KEYS)
    return Fabric(kind=kind, description=description, gpus_per_node=network.gpus_per_node,
                  node_tier_NN=tiers_from_positions(unit, pod), node_leaf_N=unit, node_pod_N=pod,
                  hosts=network.hosts, tier_labels=labels, params=params, network=network)
