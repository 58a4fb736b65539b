"""Shared helpers for the fabric tests: small generated fabrics and the sample files."""

from __future__ import annotations

import networkx as nx
import numpy as np

from moeplace.topologies.dragonfly import dragonfly_plus
from moeplace.topologies.fattree import fat_tree
from moeplace.topologies.specs import DragonflyPlusSpec, FatTreeSpec
from tests.conftest import REPO

DATA = REPO / "tests" / "data" / "topologies"


def ft(num_nodes=232, gpus=8, nics=8, gbps=200.0, **spec):
    return fat_tree(FatTreeSpec(**spec), num_nodes=num_nodes, gpus_per_node=gpus, nics_per_node=nics, link_gbps=gbps)


def dfp(num_nodes=232, gpus=8, nics=8, gbps=200.0, **spec):
    return dragonfly_plus(DragonflyPlusSpec(**spec), num_nodes=num_nodes, gpus_per_node=gpus, nics_per_node=nics,
                          link_gbps=gbps)


def nx_host_hops(fabric) -> np.ndarray:
    """Host-to-host hops by networkx on the fabric's graph, hosts not used as transit."""
    g = fabric.network.graph
    switches = [v for v, d in g.nodes(data=True) if d["kind"] == "switch"]
    out = np.zeros((fabric.num_nodes, fabric.num_nodes), dtype=np.int64)
    for i, a in enumerate(fabric.hosts):
        sub = g.subgraph(switches + [a])
        dist = nx.single_source_shortest_path_length(sub, a)
        for j, b in enumerate(fabric.hosts):
            if i != j:
                out[i, j] = min(dist[s] for s in g.neighbors(b)) + 1
    return out
