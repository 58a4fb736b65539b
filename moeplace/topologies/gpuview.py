"""The GPU-level view: where the local GPU index changes the path (rail-optimized fabrics).

Local GPU i of G sends through NIC i * R // G. In a rail-optimized fabric NIC r of every node of a unit
plugs into the unit's rail-r leaf, so a transfer between GPUs on different rails either crosses NVLink first
to the local GPU on the destination's rail (PXN, NCCL's default; one NVLink hop, then the rail leaf) or
leaves on its own rail and climbs to a spine to change rails (no PXN). `Fabric.node_tier_NN` is the PXN
view; `gpu_paths` gives both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moeplace.errors import InputError
from moeplace.topologies.base import TIER_LEAF, TIER_NVLINK, TIER_POD, TIER_SAME_GPU, Fabric
from moeplace.topologies.network import UNREACHABLE
from moeplace.topologies.routing import default_pxn


@dataclass(frozen=True, eq=False)
class GpuPaths:
    """Per GPU pair: NVLink hops before the network, the NICs used (-1 inside a node), network links, tier."""

    nvlink_hops: np.ndarray
    src_nic: np.ndarray
    dst_nic: np.ndarray
    network_hops: np.ndarray
    tier: np.ndarray


def gpu_paths(fabric: Fabric, gpu_a, gpu_b, *, pxn: bool | None = None) -> GpuPaths:
    """Vectorised over pairs of global GPU indices."""
    net = fabric.network
    assert net is not None, "the GPU-level view needs the fabric's network"
    pxn = default_pxn(fabric) if pxn is None else pxn
    G = fabric.gpus_per_node
    a, b = np.asarray(gpu_a, dtype=np.int64), np.asarray(gpu_b, dtype=np.int64)
    na, nb = a // G, b // G
    own, dst_nic = fabric.gpu_nic(a % G), fabric.gpu_nic(b % G)
    src_nic = np.where(pxn and net.rails, dst_nic, own)
    remote = na != nb
    sw_a, sw_b = net.nic_switch_NR[na, src_nic], net.nic_switch_NR[nb, dst_nic]
    hops = np.where(remote, 2 + net.dist_SS[sw_a, sw_b].astype(np.int64), 0)
    node_tier = fabric.node_tier_NN[na, nb]
    tier = np.where(sw_a == sw_b, TIER_LEAF, np.maximum(node_tier, np.where(node_tier == TIER_LEAF, TIER_POD, 0)))
    tier = np.where(remote, tier, np.where(a == b, TIER_SAME_GPU, TIER_NVLINK)).astype(np.int8)
    nvlink = np.where(remote, (src_nic != own).astype(np.int64), (a != b).astype(np.int64))
    return GpuPaths(nvlink_hops=nvlink, src_nic=np.where(remote, src_nic, -1), dst_nic=np.where(remote, dst_nic, -1),
                    network_hops=hops, tier=tier)


def gpu_route(fabric: Fabric, gpu_a: int, gpu_b: int, *, pxn: bool | None = None) -> dict:
    """One GPU pair in words: the steps of one shortest path, how many equal-cost paths, latency."""
    net = fabric.network
    G = fabric.gpus_per_node
    p = gpu_paths(fabric, [gpu_a], [gpu_b], pxn=pxn)
    na, la, nb, lb = gpu_a // G, gpu_a % G, gpu_b // G, gpu_b % G
    name_a, name_b = f"{fabric.hosts[na]}:{la}", f"{fabric.hosts[nb]}:{lb}"
    steps, paths, latency = [name_a], 1, 0.0
    if na == nb:
        steps += ["NVLink", name_b] if gpu_a != gpu_b else []
    else:
        src_nic, dst_nic = int(p.src_nic[0]), int(p.dst_nic[0])
        if p.nvlink_hops[0]:
            proxy = int(np.flatnonzero(fabric.gpu_nic(np.arange(G)) == src_nic)[0])
            steps += ["NVLink (PXN)", f"{fabric.hosts[na]}:{proxy}"]
        u, t = int(net.nic_switch_NR[na, src_nic]), int(net.nic_switch_NR[nb, dst_nic])
        steps += [f"NIC {src_nic}", net.switches[u]]
        if net.dist_SS[u, t] >= UNREACHABLE:
            raise InputError(f"no network path from {name_a} (NIC {src_nic}, {net.switches[u]}) to {name_b} (NIC "
                             f"{dst_nic}, {net.switches[t]}): the rails are separate switch planes, joined only "
                             f"through NVLink (PXN)")
        paths = _count_paths(net, u, t)
        while u != t:
            u = _next_hop(net, u, t)
            steps.append(net.switches[u])
        steps += [f"NIC {dst_nic}", name_b]
        hops = int(p.network_hops[0])
        latency = hops * float(net.link_latency_us_L.mean()) + (hops - 1) * net.switch_latency_us
    return {"from": name_a, "to": name_b, "tier": fabric.tier_labels[int(p.tier[0])],
            "nvlink_hops": int(p.nvlink_hops[0]), "network_hops": int(p.network_hops[0]), "equal_cost_paths": paths,
            "network_latency_us": round(latency, 4), "steps": steps}


def _neighbors(net, u: int) -> list[tuple[int, int]]:
    N = net.num_hosts
    m = net.is_switch_link_L & ((net.link_a_L == N + u) | (net.link_b_L == N + u))
    out = []
    for link in np.flatnonzero(m):
        a, b = int(net.link_a_L[link]) - N, int(net.link_b_L[link]) - N
        out.append((b if a == u else a, int(net.link_count_L[link])))
    return sorted(out)


def _next_hop(net, u: int, t: int) -> int:
    d = net.dist_SS[u, t]
    return next(v for v, _ in _neighbors(net, u) if net.dist_SS[v, t] == d - 1)


def _count_paths(net, u: int, t: int) -> int:
    """Equal-cost paths from switch u to t, counting parallel cables as separate paths."""
    dist = net.dist_SS[:, t]
    order = np.argsort(dist, kind="stable")
    count = np.zeros(net.num_switches, dtype=object)
    count[t] = 1
    for v in order:
        if dist[v] == 0 or dist[v] > dist[u]:
            continue
        count[v] = sum(count[w] * c for w, c in _neighbors(net, int(v)) if dist[w] == dist[v] - 1)
    return int(count[u])
