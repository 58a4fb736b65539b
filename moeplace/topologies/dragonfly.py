"""Dragonfly+ generator (Shpiner, Haramaty, Eliad, Zdornov, Gafni, Zahavi: "Dragonfly+: Low Cost Topology
for Scaling Datacenters", HiPINEB 2017).

A group is a two-level fat-tree: every leaf has one cable to every spine of its group (complete
bipartite); leaves hold the nodes' NICs; spines hold the global links. With the paper's sizing (radix k):
k/2 host ports and k/2 spine links per leaf, k/2 leaves and k/2 spines per group, k/2 global links per
spine, so a group has k^2/4 global links and at most k^2/4 + 1 groups fit (one link between every pair).

Nodes fill units and units fill groups in host order; every group is built whole (all its leaves and
spines), so `num_groups` above the minimum leaves whole groups without hosts, still used by Valiant routing.
Global links are spread evenly: every pair of groups gets floor(global links per group / (groups - 1))
links, and each group hands out its spines round-robin (pairs in order (0,1), (0,2), ..., (1,2), ...), so
spines differ by at most one global link. Minimal routing between groups is leaf -> spine with a link to
the destination group -> global link -> spine -> leaf (5 links); Valiant detours through a third group.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from moeplace.errors import InputError
from moeplace.topologies.base import DRAGONFLY_LABELS, Fabric, count, default_hosts, fabric_from_network
from moeplace.topologies.specs import DragonflyPlusSpec
from moeplace.topologies.wiring import Wiring


@dataclass(frozen=True)
class DragonflyShape:
    radix: int
    rails: int
    ports_per_node: int
    nodes_per_unit: int
    num_units: int
    leaves_per_group: int
    units_per_group: int
    spines_per_group: int
    global_links_per_spine: int
    num_groups: int
    links_per_group_pair: int

    @property
    def num_leaves(self) -> int:
        """Every group has all its leaves, also where nodes do not fill it."""
        return self.num_groups * self.leaves_per_group

    @property
    def num_spines(self) -> int:
        return self.num_groups * self.spines_per_group


def dragonfly_shape(spec: DragonflyPlusSpec, num_nodes: int, nics_per_node: int) -> DragonflyShape:
    """The shape of `spec` for the nodes, or an InputError with the arithmetic."""
    k = spec.radix
    R, p = (nics_per_node, 1) if spec.rail_optimized else (1, nics_per_node)
    spg = spec.spines_per_group or k // 2
    down = k - spg
    if down < 1:
        raise InputError(f"spines_per_group = {spg} leaves no host port on a {k}-port leaf", field="topology")
    npu = spec.nodes_per_leaf or down // p
    if npu == 0 or npu * p > down:
        raise InputError(f"{max(npu, 1)} node(s) x {p} NICs need {max(npu, 1) * p} host ports on a leaf, a {k}-port "
                         f"leaf with {spg} spine links has {down}", field="topology")
    lpg = spec.leaves_per_group or (k // 2) // R * R
    if lpg % R or lpg == 0:
        raise InputError(f"leaves_per_group = {lpg} is not a whole number of rail groups of {R} leaves",
                         field="topology")
    h = spec.global_links_per_spine or k // 2
    if lpg + h > k:
        raise InputError(f"a spine needs {lpg} leaf ports + {h} global ports = {lpg + h}, more than its {k}",
                         field="topology")
    U = math.ceil(num_nodes / npu)
    upg = lpg // R
    G = spec.num_groups or math.ceil(U / upg)
    if G * upg < U:
        raise InputError(f"num_groups = {G} holds {G} x {upg} units x {npu} nodes = {G * upg * npu} nodes, fewer "
                         f"than {num_nodes}", field="topology")
    per_group = spg * h
    if G - 1 > per_group:
        raise InputError(f"{num_nodes} nodes need {G} groups, but a group has {spg} spines x {h} global links = "
                         f"{per_group} global links, enough for at most {per_group + 1} groups", field="topology")
    m = per_group // (G - 1) if G > 1 else 0
    return DragonflyShape(k, R, p, npu, U, lpg, upg, spg, h, G, m)


def dragonfly_plus(spec: DragonflyPlusSpec, *, num_nodes: int, gpus_per_node: int, nics_per_node: int,
                   link_gbps: float, hosts: tuple[str, ...] | None = None) -> Fabric:
    """Build the Dragonfly+ `spec` for the nodes `hosts` in host order (units fill groups in order)."""
    hosts = tuple(hosts or default_hosts(num_nodes))
    w, desc, params = dragonfly_wiring(spec, hosts, nics_per_node, link_gbps)
    net = w.build(list(hosts), gpus_per_node, switch_latency_us=spec.switch_latency_us)
    return fabric_from_network(net, kind="dragonfly+", description=desc, params=params, labels=DRAGONFLY_LABELS)


def dragonfly_wiring(spec: DragonflyPlusSpec, hosts: tuple[str, ...], nics_per_node: int,
                     link_gbps: float) -> tuple[Wiring, str, dict]:
    """The cabling of `spec` for `hosts`, its one-line description, and the params that rebuild it."""
    num_nodes = len(hosts)
    sh = dragonfly_shape(spec, num_nodes, nics_per_node)
    gbps, lat = spec.link_gbps or link_gbps, spec.link_latency_us
    w = Wiring()
    gw = max(2, len(str(sh.num_groups)))
    units, spines = [], []
    for g in range(sh.num_groups):
        spines.append([w.add_switch(f"spine-g{g + 1:0{gw}d}-{j + 1:02d}", role="spine", ports=sh.radix, level=2)
                       for j in range(sh.spines_per_group)])
        for u in range(g * sh.units_per_group, (g + 1) * sh.units_per_group):
            local = u - g * sh.units_per_group + 1
            names = ([f"leaf-g{g + 1:0{gw}d}-su{local:02d}-r{r}" for r in range(sh.rails)] if spec.rail_optimized
                     else [f"leaf-g{g + 1:0{gw}d}-{local:02d}"])
            units.append([w.add_switch(x, role="leaf", ports=sh.radix, level=1) for x in names])
            for leaf in units[-1]:
                for spine in spines[g]:
                    w.connect(leaf, spine, gbps=gbps, latency_us=lat)
    for n, host in enumerate(hosts):
        unit = units[n // sh.nodes_per_unit]
        for r in range(nics_per_node):
            w.attach(host, unit[r if spec.rail_optimized else 0], gbps=gbps, latency_us=lat)
    cursor = [0] * sh.num_groups
    for g in range(sh.num_groups):
        for h in range(g + 1, sh.num_groups):
            for _ in range(sh.links_per_group_pair):
                a, b = spines[g][cursor[g] % sh.spines_per_group], spines[h][cursor[h] % sh.spines_per_group]
                cursor[g] += 1
                cursor[h] += 1
                w.connect(a, b, gbps=gbps, latency_us=lat)
    resolved = spec.model_copy(update={
        "nodes_per_leaf": sh.nodes_per_unit, "leaves_per_group": sh.leaves_per_group,
        "spines_per_group": sh.spines_per_group, "global_links_per_spine": sh.global_links_per_spine,
        "num_groups": sh.num_groups, "link_gbps": gbps})
    shape = {**asdict(sh), "num_leaves": sh.num_leaves, "num_spines": sh.num_spines}
    params = {"source": "generator", "spec": resolved.model_dump(mode="json"), "shape": shape}
    unit = (f"{count(sh.num_units, 'unit')} of {sh.nodes_per_unit} ({sh.rails} rail leaves each)"
            if spec.rail_optimized else f"{count(sh.num_units, 'leaf', 'leaves')} of {sh.nodes_per_unit}")
    desc = (f"{'rail-optimized ' if spec.rail_optimized else ''}Dragonfly+ of {sh.radix}-port switches: {num_nodes} "
            f"nodes in {unit}, {count(sh.num_groups, 'group')} of {sh.units_per_group}; "
            f"{count(sh.num_leaves, 'leaf', 'leaves')}, {count(sh.num_spines, 'spine')}, "
            f"{sh.links_per_group_pair} global links per group pair")
    return w, desc, params
