"""Link contention: the deployment's network crossings routed over the fabric's links.

With a fabric that has a network (generated fat-trees and Dragonfly+, imported topologies), the crossings
(`Transfers.flow_*_F`, GPU to GPU) go through `moeplace.topologies.routing.link_loads` (per-hop ECMP or
minimal/Valiant routing, PXN on rail-optimized fabrics, per-NIC loads). Without one (a fabric given by
node positions only), a tier model stands in: each leaf's and pod's uplinks carry what leaves it, with the
capacity of the NICs below it (non-blocking).

Times are microseconds per token at the *achievable* rate: nominal link speeds are scaled by the profile's
NIC efficiency (achievable NIC bandwidth per GPU over the cluster's nominal one), so a link at utilization
1.0 is as full as the profile says a NIC can be.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moeplace.costmodel.profile import HardwareProfile
from moeplace.costmodel.transfers import Transfers
from moeplace.placement.problem import Problem


@dataclass(frozen=True, eq=False)
class LinkView:
    method: str
    link_us_per_token_X: np.ndarray   # float [links x directions] (or [uplinks]) microseconds per token
    link_labels_X: tuple[str, ...]
    nic_us_per_token_NR: np.ndarray   # float [nodes, NICs] (tier model: [nodes, 1], the node's NICs pooled)
    switch_matrix: tuple[np.ndarray, tuple[str, ...], np.ndarray] | None = None
    """([S, S] us/token of the busier direction of each switch-to-switch link (NaN: no link), names, levels)"""

    @property
    def busiest_us_per_token(self) -> float:
        return float(self.link_us_per_token_X.max(initial=0.0))

    def busiest(self, k: int = 5) -> list[tuple[str, float]]:
        order = np.lexsort((np.arange(self.link_us_per_token_X.size), -self.link_us_per_token_X))[:k]
        return [(self.link_labels_X[i], float(self.link_us_per_token_X[i])) for i in order
                if self.link_us_per_token_X[i] > 0]


def nic_efficiency(profile: HardwareProfile, problem: Problem) -> float:
    return profile.nic_gbps_per_gpu / problem.cluster.nic_gbytes_per_gpu


def link_view(profile: HardwareProfile, problem: Problem, tr: Transfers) -> LinkView:
    fabric = problem.fabric
    eff = nic_efficiency(profile, problem)
    if getattr(fabric, "network", None) is not None:
        from moeplace.topologies.routing import link_loads

        loads = link_loads(fabric, tr.flow_src_gpu_F, tr.flow_dst_gpu_F, tr.flow_bytes_F)
        net = loads.network
        t_L2 = loads.link_time_s_L2 * 1e6 / eff
        labels = tuple(net.link_name(link, d) for link in range(net.num_links) for d in (0, 1))
        nic_bytes = np.maximum(loads.nic_tx_bytes_NR, loads.nic_rx_bytes_NR)
        nic_t = nic_bytes * 8.0 / (net.nic_gbps_NR * 1e9) * 1e6 / eff
        return LinkView(method=f"routed over the fabric's links ({loads.routing}, PXN {'on' if loads.pxn else 'off'})",
                        link_us_per_token_X=t_L2.ravel(), link_labels_X=labels, nic_us_per_token_NR=nic_t,
                        switch_matrix=_switch_matrix(net, t_L2))
    return _tier_model(profile, problem, tr)


def _switch_matrix(net, t_L2: np.ndarray) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """[S, S]: the busier direction of every switch-to-switch link, for the heatmap; names; levels."""
    N, S = net.num_hosts, net.num_switches
    m = np.flatnonzero(net.is_switch_link_L)
    mat = np.full((S, S), np.nan)
    a, b = net.link_a_L[m] - N, net.link_b_L[m] - N
    mat[a, b] = t_L2[m].max(axis=1)
    mat[b, a] = mat[a, b]
    return mat, tuple(net.switches), np.asarray(net.switch_level_S, dtype=np.int64)


def _tier_model(profile: HardwareProfile, problem: Problem, tr: Transfers) -> LinkView:
    fab = problem.fabric
    node_NN = tr.node_NN
    node_cap = profile.nic_gbps_per_gpu * 1e3 * problem.gpus_per_node  # bytes per microsecond
    times, labels = [], []
    for name, group_N in (("leaf", fab.node_leaf_N), ("pod", fab.node_pod_N)):
        for u in np.unique(group_N):
            inside = group_N == u
            if inside.all():
                continue
            up = node_NN[inside][:, ~inside].sum()
            down = node_NN[~inside][:, inside].sum()
            cap = inside.sum() * node_cap
            times += [up / cap, down / cap]
            labels += [f"{name} {u} up", f"{name} {u} down"]
    nic = np.maximum(node_NN.sum(axis=1), node_NN.sum(axis=0))[:, None] / node_cap
    return LinkView(method="tier model (leaf and pod uplinks, non-blocking; the fabric has no link graph)",
                    link_us_per_token_X=np.asarray(times, dtype=np.float64), link_labels_X=tuple(labels),
                    nic_us_per_token_NR=nic)
