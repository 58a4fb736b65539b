"""Expected traffic routed over a fabric: bytes on every link, the busiest link, bytes per NIC and NVLink.

    link_loads(fabric, src_gpu_F, dst_gpu_F, bytes_F, routing=None, pxn=None) -> LinkLoads

takes F flows of expected bytes (per token, or per any unit of work) between GPUs (global index =
node * gpus_per_node + local GPU) and routes each as a fluid:

  * Same GPU: nothing moves. Same node: NVLink bytes of the source GPU.
  * NICs: local GPU i of G sends through NIC i * R // G and receives there. With PXN (on by default) in a
    rail-optimized fabric a flow leaves the source node through its NIC on the destination NIC's rail,
    reached over NVLink first (those bytes count as the source GPU's NVLink bytes).
  * `ecmp` (fat-trees and imports) and `minimal` (Dragonfly+): every switch splits what it forwards towards
    a destination leaf evenly over the cables of all its next hops on shortest paths (per-hop ECMP; a link of
    c parallel cables gets c shares). `valiant`: a flow between different pods (Dragonfly+ groups) first
    goes minimally to a uniformly chosen third pod/group (arriving at whichever of its switches the shortest
    paths reach), then minimally to its destination; flows inside a pod stay minimal. With fewer than
    three pods Valiant is minimal.

Loads are in the unit of `bytes_F` per direction of each link; `LinkLoads.link_time_s_L2` is the seconds a
link needs per unit at its capacity, so the busiest link bounds the rate (`saturation_rate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from moeplace.topologies.base import Fabric
from moeplace.errors import InputError
from moeplace.topologies.network import UNREACHABLE, Network

ROUTINGS = ("ecmp", "minimal", "valiant")


def default_routing(fabric: Fabric) -> str:
    spec = fabric.params.get("spec", {})
    if "routing" in spec:
        return spec["routing"]
    return "minimal" if fabric.network is not None and fabric.network.has_global_links else "ecmp"


def default_pxn(fabric: Fabric) -> bool:
    return bool(fabric.params.get("spec", {}).get("pxn", True))


@dataclass(frozen=True, eq=False)
class LinkLoads:
    """Routed traffic. load_bytes_L2[l, 0] flows from link_a_L[l] to link_b_L[l] (host -> switch on host
    links), [l, 1] the other way; NIC arrays are [nodes, nics], NVLink bytes per source GPU."""

    network: Network
    routing: str
    pxn: bool
    load_bytes_L2: np.ndarray
    nic_tx_bytes_NR: np.ndarray
    nic_rx_bytes_NR: np.ndarray
    nvlink_tx_bytes_G: np.ndarray

    @cached_property
    def link_time_s_L2(self) -> np.ndarray:
        """Seconds per unit of traffic on each link direction at its capacity."""
        return self.load_bytes_L2 * 8.0 / (self.network.link_gbps_L[:, None] * 1e9)

    @property
    def saturation_rate(self) -> float:
        """Units (tokens) per second at which the busiest link direction is full (inf with no traffic)."""
        worst = float(self.link_time_s_L2.max(initial=0.0))
        return float("inf") if worst == 0.0 else 1.0 / worst

    def utilization_L2(self, rate: float) -> np.ndarray:
        return self.link_time_s_L2 * rate

    def max_link_utilization(self, rate: float) -> float:
        """Busiest link direction's load / capacity at `rate` units (tokens) per second."""
        return float(self.link_time_s_L2.max(initial=0.0) * rate)

    def nic_utilization_NR(self, rate: float) -> np.ndarray:
        """max(tx, rx) / capacity of every NIC at `rate` units per second."""
        busy = np.maximum(self.nic_tx_bytes_NR, self.nic_rx_bytes_NR)
        return busy * 8.0 * rate / (self.network.nic_gbps_NR * 1e9)

    @property
    def network_bytes(self) -> float:
        """Bytes per unit that leave a NIC."""
        return float(self.nic_tx_bytes_NR.sum())

    def busiest(self, k: int = 10) -> list[dict]:
        """The k most loaded link directions relative to capacity, busiest first (ties by link index)."""
        t = self.link_time_s_L2.ravel()
        order = np.lexsort((np.arange(t.size), -t))[:k]
        out = []
        for flat in order:
            if t[flat] <= 0:
                break
            link, d = divmod(int(flat), 2)
            out.append({"link": self.network.link_name(link, d), "bytes": float(self.load_bytes_L2[link, d]),
                        "capacity_gbps": float(self.network.link_gbps_L[link]), "time_s": float(t[flat])})
        return out


def link_loads(fabric: Fabric, src_gpu_F: np.ndarray, dst_gpu_F: np.ndarray, bytes_F: np.ndarray, *,
               routing: str | None = None, pxn: bool | None = None) -> LinkLoads:
    """Route GPU-to-GPU expected bytes over `fabric.network` (see the module docstring)."""
    net = fabric.network
    if net is None:
        raise ValueError(f"fabric {fabric.kind!r} has no network to route over")
    routing = routing or default_routing(fabric)
    if routing not in ROUTINGS:
        raise ValueError(f"unknown routing {routing!r} (known: {', '.join(ROUTINGS)})")
    pxn = default_pxn(fabric) if pxn is None else pxn
    G, R, N, S = net.gpus_per_node, net.nics_per_node, net.num_hosts, net.num_switches
    src = np.asarray(src_gpu_F, dtype=np.int64).ravel()
    dst = np.asarray(dst_gpu_F, dtype=np.int64).ravel()
    b = np.asarray(bytes_F, dtype=np.float64).ravel()
    if not (src.shape == dst.shape == b.shape):
        raise ValueError(f"src, dst and bytes differ in length: {src.shape}, {dst.shape}, {b.shape}")
    if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= N * G):
        raise ValueError(f"GPU index outside 0..{N * G - 1}")
    keep = (src != dst) & (b != 0)
    src, dst, b = src[keep], dst[keep], b[keep]
    nvlink = np.zeros(N * G)
    same = src // G == dst // G
    nvlink += np.bincount(src[same], weights=b[same], minlength=N * G)
    src, dst, b = src[~same], dst[~same], b[~same]
    nic_of_local = np.arange(G) * R // G
    own_rail, dst_rail = nic_of_local[src % G], nic_of_local[dst % G]
    src_rail = dst_rail if (pxn and net.rails) else own_rail
    moved = src_rail != own_rail
    nvlink += np.bincount(src[moved], weights=b[moved], minlength=N * G)
    nic_src = (src // G) * R + src_rail
    nic_dst = (dst // G) * R + dst_rail
    tx = np.bincount(nic_src, weights=b, minlength=N * R)
    rx = np.bincount(nic_dst, weights=b, minlength=N * R)
    load = np.zeros((net.num_links, 2))
    nic_link = net.nic_link_NR.ravel()
    load[:, 0] += np.bincount(nic_link, weights=tx, minlength=net.num_links)
    load[:, 1] += np.bincount(nic_link, weights=rx, minlength=net.num_links)
    nic_sw = net.nic_switch_NR.ravel()
    W = np.bincount(nic_sw[nic_src] * S + nic_sw[nic_dst], weights=b, minlength=S * S).reshape(S, S)
    np.fill_diagonal(W, 0.0)
    load += route_switch_traffic(net, W, routing)
    return LinkLoads(network=net, routing=routing, pxn=pxn, load_bytes_L2=load, nic_tx_bytes_NR=tx.reshape(N, R),
                     nic_rx_bytes_NR=rx.reshape(N, R), nvlink_tx_bytes_G=nvlink)


@dataclass(frozen=True)
class _Arcs:
    """Directed switch links: arc e runs eu[e] -> ev[e] over link[e] in direction dir[e]."""

    eu: np.ndarray
    ev: np.ndarray
    mult: np.ndarray
    link: np.ndarray
    dir: np.ndarray


def _arcs(net: Network) -> _Arcs:
    m = np.flatnonzero(net.is_switch_link_L)
    a, b = net.link_a_L[m] - net.num_hosts, net.link_b_L[m] - net.num_hosts
    c = net.link_count_L[m].astype(np.float64)
    return _Arcs(np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([c, c]), np.concatenate([m, m]),
                 np.concatenate([np.zeros(m.size, int), np.ones(m.size, int)]))


def propagate(arcs: _Arcs, dist_SC: np.ndarray, inject_SC: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-hop ECMP of C commodities: commodity c enters at switches (inject_SC[:, c]) and sinks where
    dist_SC[:, c] == 0. Returns (bytes per arc [E], bytes sunk [S, C])."""
    dist = dist_SC.astype(np.int32)
    dU, dV = dist[arcs.eu], dist[arcs.ev]
    down = (dV == dU - 1) & (dU < UNREACHABLE)
    w = np.where(down, arcs.mult[:, None], 0.0)
    out = np.zeros(dist.shape)
    np.add.at(out, arcs.eu, w)
    frac = np.divide(w, out[arcs.eu], out=np.zeros_like(w), where=w > 0)
    X = np.array(inject_SC, dtype=np.float64)
    stuck = (X > 0) & (dist >= UNREACHABLE)
    if stuck.any():
        raise InputError("traffic enters a switch with no path to its destination (rails on separate switch planes "
                         "are joined only through NVLink: leave PXN on)")
    load = np.zeros(arcs.eu.size)
    top = int(dist[dist < UNREACHABLE].max(initial=0))
    for d in range(top, 0, -1):
        sel = down & (dU == d)
        if not sel.any():
            continue
        flow = np.where(sel, X[arcs.eu] * frac, 0.0)
        np.add.at(X, arcs.ev, flow)
        load += flow.sum(axis=1)
    return load, np.where(dist == 0, X, 0.0)


def route_switch_traffic(net: Network, W_SS: np.ndarray, routing: str) -> np.ndarray:
    """float [links, 2]: switch-link loads of traffic W_SS[s, t] from switch s to switch t (s != t)."""
    arcs = _arcs(net)
    load = np.zeros(arcs.eu.size)
    W = np.array(W_SS, dtype=np.float64)
    dist = net.dist_SS
    pod = net.positions[2]
    pods = int(pod.max(initial=-1)) + 1
    if routing == "valiant" and pods >= 3:
        cross = (pod[:, None] != pod[None, :]) & (pod[:, None] >= 0) & (pod[None, :] >= 0)
        Wv, W = np.where(cross, W, 0.0), np.where(cross, 0.0, W)
        for i in range(pods):
            outside = pod != i
            Wi = Wv * outside[:, None] * outside[None, :] / (pods - 2)
            amount = Wi.sum(axis=1)
            srcs = np.flatnonzero(amount)
            if srcs.size == 0:
                continue
            dist_i = dist[:, pod == i].min(axis=1)
            inject = np.zeros((net.num_switches, srcs.size))
            inject[srcs, np.arange(srcs.size)] = amount[srcs]
            li, sunk = propagate(arcs, np.repeat(dist_i[:, None], srcs.size, axis=1), inject)
            load += li
            W += (sunk / amount[srcs][None, :]) @ Wi[srcs, :]
        np.fill_diagonal(W, 0.0)
    dests = np.flatnonzero(W.sum(axis=0) > 0)
    if dests.size:
        li, _ = propagate(arcs, dist[:, dests], W[:, dests])
        load += li
    out = np.zeros((net.num_links, 2))
    np.add.at(out, (arcs.link, arcs.dir), load)
    return out
