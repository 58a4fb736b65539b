"""From inputs (model, cluster, topology, statistics) to a `Problem`: the planner's front half."""

from __future__ import annotations

import numpy as np

from moeplace.errors import InputError
from moeplace.placement.flows import build_traffic
from moeplace.placement.problem import Problem
from moeplace.placement.schema import ClusterSpec, ModelSpec
from moeplace.placement.stats import RoutingStats
from moeplace.placement.synth import synthesize
from moeplace.topologies.base import Fabric, TierCosts, default_hosts
from moeplace.topologies.fattree import fat_tree


def cluster_hosts(cluster: ClusterSpec) -> tuple[str, ...]:
    if cluster.hosts is None:
        return default_hosts(cluster.num_nodes)
    from moeplace.topologies.hostlist import expand_hostlist

    hosts = tuple(expand_hostlist(cluster.hosts))
    if len(hosts) != cluster.num_nodes:
        raise InputError(f"hostlist {cluster.hosts!r} names {len(hosts)} hosts, the cluster has "
                         f"{cluster.num_nodes} nodes", field="hosts")
    return hosts


def build_fabric(cluster: ClusterSpec, topology: str = "fat-tree") -> Fabric:
    if topology != "fat-tree":
        raise InputError(f"unknown topology {topology!r} (known: fat-tree)", field="--topology")
    t = cluster.topology
    return fat_tree(cluster.num_nodes, cluster.gpus_per_node, nodes_per_leaf=t.nodes_per_leaf,
                    leaves_per_pod=t.leaves_per_pod, hosts=cluster_hosts(cluster))


def default_stats(model: ModelSpec, seed: int = 0) -> RoutingStats:
    """The embedded default: synthetic statistics for the model's shape from a fixed seed."""
    return synthesize(model.num_moe_layers, model.num_experts, model.top_k, seed=seed,
                      layer_numbers=model.moe_layer_numbers)


def default_tier_costs(cluster: ClusterSpec) -> TierCosts:
    return TierCosts.default(cluster.nic_gbytes_per_gpu, cluster.gpu.nvlink_gbps)


def build_problem(model: ModelSpec, cluster: ClusterSpec, stats: RoutingStats, *, fabric: Fabric | None = None,
                  flow: str = "chain", dedup: bool = True, tier_costs: TierCosts | None = None,
                  balance_per_layer: bool = False, stats_source: str = "statistics") -> Problem:
    stats.check_model(model.num_moe_layers, model.num_experts, model.top_k, stats_source)
    fabric = fabric or build_fabric(cluster)
    traffic = build_traffic(flow, stats, model, dedup=dedup)
    return Problem(model=model, cluster=cluster, fabric=fabric, flow=flow, dedup=dedup,
                   tier_costs=tier_costs or default_tier_costs(cluster), traffic=traffic,
                   balance_per_layer=balance_per_layer)


def file_digest(path: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_stats(ref: str | None, model: ModelSpec, *, seed: int = 0, synth: dict | None = None) -> RoutingStats:
    """Statistics for planning: a moeplace statistics `.npz`, a trace (`topk` array), or the synthetic default.

    A trace is aggregated on the fly (all its paths kept, for the exact dedup objective).
    """
    from pathlib import Path

    from moeplace.placement.synth import synthesize
    from moeplace.placement.trace import check_topk, read_topk

    if ref is None:
        knobs = dict(synth or {})
        return synthesize(model.num_moe_layers, model.num_experts, model.top_k, seed=knobs.pop("seed", seed),
                          layer_numbers=model.moe_layer_numbers, **knobs)
    p = Path(ref)
    if not p.is_file():
        raise InputError("file not found", source=str(p))
    is_trace = p.suffix.lower() == ".npy"
    if not is_trace:
        try:
            with np.load(p, allow_pickle=False) as z:
                is_trace = "topk" in z.files and "load" not in z.files
        except Exception:
            is_trace = False
    if is_trace:
        topk = read_topk(p)
        check_topk(topk, model.num_moe_layers, model.num_experts, model.top_k, str(p))
        prov = {"source": "trace", "file": p.name, "sha256": file_digest(str(p))}
        return RoutingStats.from_paths(topk, model.num_experts, layer_numbers=model.moe_layer_numbers,
                                       provenance=prov, keep_paths=None)
    stats = RoutingStats.load(p)
    stats.check_model(model.num_moe_layers, model.num_experts, model.top_k, str(p))
    prov = dict(stats.provenance)
    prov.setdefault("source", "statistics")
    prov["file"] = p.name
    prov["sha256"] = file_digest(str(p))
    return RoutingStats(load_LE=stats.load_LE, coact_LEE=stats.coact_LEE, trans_LEE=stats.trans_LEE,
                        trans_primary_LEE=stats.trans_primary_LEE, num_tokens=stats.num_tokens, top_k=stats.top_k,
                        layer_numbers=stats.layer_numbers, paths_TLK=stats.paths_TLK, provenance=prov)
