"""What `moeplace topology show` reports: switches per level, ports, tapers, tiers, diameter, bisection.

Bisection bandwidth is the minimum cut (networkx max-flow) between the first and the second half of the
hosts in host order, in Gb/s one way; with hosts filling units and pods in order this is the cut across the
middle of the fabric. `full_bisection_gbps` is half of all NIC capacity, what a non-blocking fabric gives.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from moeplace.topologies.base import NUM_TIERS, TIER_LEAF, Fabric


def bisection_gbps(fabric: Fabric) -> float:
    net = fabric.network
    g = net.graph.copy()
    half = net.num_hosts // 2
    if half == 0:
        return 0.0
    for h in net.hosts[:half]:
        g.add_edge("\0a", h, capacity_gbps=float("inf"))
    for h in net.hosts[half:]:
        g.add_edge("\0b", h, capacity_gbps=float("inf"))
    value, _ = nx.minimum_cut(g, "\0a", "\0b", capacity="capacity_gbps")
    return float(value)


def level_rows(fabric: Fabric) -> list[dict]:
    """Per switch level: role, count, radix, most ports in use, and the worst down:up capacity ratio (links
    to a switch of the same level, Dragonfly+ global links, count as up)."""
    net = fabric.network
    N, S = net.num_hosts, net.num_switches
    level = net.switch_level_S
    cap_down, cap_up, cables = np.zeros(S), np.zeros(S), np.zeros(S, dtype=np.int64)
    for a, b, c, g in zip(net.link_a_L.tolist(), net.link_b_L.tolist(), net.link_count_L.tolist(),
                          net.link_gbps_L.tolist()):
        ends = [(b - N, level[a - N] if a >= N else 0)]
        if a >= N:
            ends.append((a - N, level[b - N]))
        for s, other in ends:
            cables[s] += c
            if other < level[s]:
                cap_down[s] += g
            else:
                cap_up[s] += g
    rows = []
    for lv in sorted(set(level.tolist())):
        m = level == lv
        ratio = np.divide(cap_down[m], cap_up[m], out=np.full(int(m.sum()), np.nan), where=cap_up[m] > 0)
        rows.append({"level": int(lv), "role": net.switch_role_S[int(np.flatnonzero(m)[0])], "switches": int(m.sum()),
                     "ports": int(net.switch_ports_S[m].max()), "ports_used": int(cables[m].max()),
                     "max_down_up": None if np.all(np.isnan(ratio)) else float(np.nanmax(ratio))})
    return rows


def tier_rows(fabric: Fabric) -> list[dict]:
    """Per network tier: node pairs (ordered), hops and network latency between them."""
    net = fabric.network
    hops = fabric.node_hops_NN
    rows = []
    lat_link = float(net.link_latency_us_L.mean()) if net is not None and net.num_links else 0.0
    lat_sw = net.switch_latency_us if net is not None else 0.0
    for t in range(TIER_LEAF, NUM_TIERS):
        m = fabric.node_tier_NN == t
        if not m.any():
            continue
        h = hops[m]
        worst = int(h.max())
        rows.append({"tier": fabric.tier_labels[t], "node_pairs": int(m.sum()), "min_hops": int(h.min()),
                     "max_hops": worst, "max_latency_us": round(worst * lat_link + (worst - 1) * lat_sw, 4)})
    return rows


def fabric_summary(fabric: Fabric, *, with_bisection: bool = True) -> dict:
    net = fabric.network
    units = np.bincount(fabric.node_leaf_N)
    pods = np.bincount(fabric.node_pod_N)
    out = {"kind": fabric.kind, "description": fabric.description, "nodes": fabric.num_nodes,
           "gpus_per_node": fabric.gpus_per_node, "gpus": fabric.num_gpus, "nics_per_node": fabric.nics_per_node,
           "tier_labels": list(fabric.tier_labels),
           "leaf_units": int(units.size), "nodes_per_unit": [int(units.min()), int(units.max())],
           "pods": int(pods.size), "nodes_per_pod": [int(pods.min()), int(pods.max())],
           "rail_optimized": bool(net.rails) if net is not None else False,
           "diameter_hops": fabric.diameter_hops, "tiers": tier_rows(fabric)}
    if net is not None:
        out["nic_gbps"] = sorted({round(float(x), 3) for x in net.nic_gbps_NR.ravel()})
        out["levels"] = level_rows(fabric)
        out["switch_cables"] = int(net.link_count_L[net.is_switch_link_L].sum())
        out["injection_gbps"] = float(net.nic_gbps_NR.sum())
        out["full_bisection_gbps"] = out["injection_gbps"] / 2
        if with_bisection:
            out["bisection_gbps"] = bisection_gbps(fabric)
    return out
