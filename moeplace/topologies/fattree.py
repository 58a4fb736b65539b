"""Fat-tree generator: 2 or 3 levels of `radix`-port switches, a taper per level, optional rails.

Step 1 (`fat_tree_shape`) is arithmetic only: ports per level, nodes per leaf unit, units per pod, spines
and cores, each checked against the radix, with a message that shows the numbers when a shape cannot be
built. Step 2 (`fat_tree`) wires it: nodes fill units in host order, units fill pods; every leaf has
`leaf_spine_cables` cables to each spine of its pod; spine j of every pod connects to the cores of plane j.

A leaf unit is one leaf, or with rails the `R` rail leaves of a scalable unit (NIC r of every node on rail
leaf r, as in NVIDIA's DGX SuperPOD); spines connect to every leaf of their pod, whatever its rail.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from moeplace.errors import InputError
from moeplace.topologies.base import Fabric, count, default_hosts, fabric_from_network
from moeplace.topologies.specs import FatTreeSpec
from moeplace.topologies.wiring import Wiring


def split_ports(radix: int, oversubscription: float) -> tuple[int, int]:
    """(down, up) ports of a switch whose down:up ratio is at most `oversubscription` (40, 1.0 -> 20, 20)."""
    up = max(1, math.floor(radix / (1.0 + oversubscription) + 1e-9))
    down = min(radix - up, math.floor(up * oversubscription + 1e-9))
    return down, up


def _smallest_divisor(n: int, fits) -> int | None:
    return next((d for d in range(1, n + 1) if n % d == 0 and fits(d)), None)


@dataclass(frozen=True)
class FatTreeShape:
    radix: int
    levels: int
    rails: int               # leaves per unit: NICs per node with rails, else 1
    ports_per_node: int      # leaf ports one node takes on one leaf
    nodes_per_unit: int
    num_units: int
    units_per_pod: int
    num_pods: int
    leaf_down: int
    leaf_up: int
    spine_down: int
    spine_up: int
    spines_per_pod: int
    leaf_spine_cables: int   # cables from a leaf to each spine of its pod
    cores_per_plane: int     # 0 with 2 levels
    spine_core_cables: int   # cables from a spine to each core of its plane

    @property
    def num_leaves(self) -> int:
        return self.num_units * self.rails

    @property
    def num_spines(self) -> int:
        return self.num_pods * self.spines_per_pod

    @property
    def num_cores(self) -> int:
        return self.spines_per_pod * self.cores_per_plane


def fat_tree_shape(spec: FatTreeSpec, num_nodes: int, nics_per_node: int) -> FatTreeShape:
    """The shape of `spec` for `num_nodes` nodes of `nics_per_node` NICs, or an InputError with the arithmetic."""
    k, N = spec.radix, num_nodes
    taper = tuple(spec.oversubscription) + (1.0,) * (2 - len(spec.oversubscription))
    R, p = (nics_per_node, 1) if spec.rail_optimized else (1, nics_per_node)
    unit_word = f"rail groups of {R} leaves" if spec.rail_optimized else "leaves"
    d1, u1 = split_ports(k, taper[0])
    leaf_txt = f"a {k}-port leaf at {taper[0]:g}:1 has {d1} down + {u1} up ports"
    if spec.nodes_per_leaf is None and d1 < p:
        raise InputError(f"a node's {p} NICs need {p} ports on one leaf, {leaf_txt} (set rail_optimized = true)",
                         field="topology")
    npu = spec.nodes_per_leaf or d1 // p
    if npu * p > d1:
        raise InputError(f"nodes_per_leaf = {npu} needs {npu} x {p} = {npu * p} down ports on a leaf, {leaf_txt}",
                         field="topology")
    U = math.ceil(N / npu)
    L = U * R
    E = N * nics_per_node
    need = f"{N} nodes x {nics_per_node} NICs = {E:,} endpoints need {L} leaves ({U} {unit_word})"
    levels = spec.levels
    upp = spec.leaves_per_pod
    if levels is None:
        levels = 2 if L <= k and (upp is None or upp >= U) else 3
    if levels == 2:
        if L > k:
            raise InputError(f"a 2-level fat-tree of {k}-port switches tops out at {k} leaves x {d1} down ports = "
                             f"{k * d1:,} endpoints, and {need}; use levels = 3", field="topology")
        if upp is not None and upp < U:
            raise InputError(f"leaves_per_pod = {upp} splits {U} {unit_word} into {math.ceil(U / upp)} pods, "
                             f"which needs levels = 3", field="topology")
        s = _smallest_divisor(u1, lambda s: L * (u1 // s) <= k)
        return FatTreeShape(k, 2, R, p, npu, U, U, 1, d1, u1, k, 0, s, u1 // s, 0, 0)
    d2, u2 = split_ports(k, taper[1])
    spine_txt = f"a {k}-port spine at {taper[1]:g}:1 has {d2} down + {u2} up ports"
    if upp is None:
        upp = d2 // R
        if upp == 0:
            raise InputError(f"a rail group of {R} leaves needs {R} spine down ports, {spine_txt}", field="topology")
    if upp * R > d2:
        raise InputError(f"leaves_per_pod = {upp} needs {upp} x {R} = {upp * R} spine down ports, {spine_txt}",
                         field="topology")
    pods = math.ceil(U / upp)
    P = min(U, upp) * R
    c = _smallest_divisor(u2, lambda c: pods * (u2 // c) <= k)
    if c is None:
        top = k * upp * npu * nics_per_node
        raise InputError(f"a 3-level fat-tree of {k}-port switches tops out at {k} pods x {upp * R} leaves x "
                         f"{npu} nodes x {nics_per_node} NICs = {top:,} endpoints, and {N} nodes x {nics_per_node} "
                         f"NICs = {E:,} endpoints need {pods} pods of {upp} {unit_word}; more than 3 levels is not "
                         f"supported", field="topology")
    s = _smallest_divisor(u1, lambda s: P * (u1 // s) <= d2)
    return FatTreeShape(k, 3, R, p, npu, U, upp, pods, d1, u1, d2, u2, s, u1 // s, c, u2 // c)


def fat_tree(spec: FatTreeSpec, *, num_nodes: int, gpus_per_node: int, nics_per_node: int, link_gbps: float,
             hosts: tuple[str, ...] | None = None) -> Fabric:
    """Build the fat-tree `spec` for the nodes `hosts` (default node001...) in host order."""
    hosts = tuple(hosts or default_hosts(num_nodes))
    w, desc, params = fat_tree_wiring(spec, hosts, nics_per_node, link_gbps)
    net = w.build(list(hosts), gpus_per_node, switch_latency_us=spec.switch_latency_us)
    return fabric_from_network(net, kind="fat-tree", description=desc, params=params)


def fat_tree_wiring(spec: FatTreeSpec, hosts: tuple[str, ...], nics_per_node: int,
                    link_gbps: float) -> tuple[Wiring, str, dict]:
    """The cabling of `spec` for `hosts`, its one-line description, and the params that rebuild it."""
    num_nodes = len(hosts)
    sh = fat_tree_shape(spec, num_nodes, nics_per_node)
    gbps = spec.link_gbps or link_gbps
    lat = spec.link_latency_us
    w = Wiring()
    uw, pw = max(2, len(str(sh.num_units))), max(2, len(str(sh.num_pods)))
    leaves = []
    for u in range(sh.num_units):
        if spec.rail_optimized:
            leaves.append([w.add_switch(f"leaf-su{u + 1:0{uw}d}-r{r}", role="leaf", ports=sh.radix, level=1)
                           for r in range(sh.rails)])
        else:
            leaves.append([w.add_switch(f"leaf{u + 1:0{max(3, uw)}d}", role="leaf", ports=sh.radix, level=1)])
    for n, host in enumerate(hosts):
        unit = leaves[n // sh.nodes_per_unit]
        for r in range(nics_per_node):
            w.attach(host, unit[r if spec.rail_optimized else 0], gbps=gbps, latency_us=lat)
    sw = max(2, len(str(sh.spines_per_pod)))
    spines = []
    for p in range(sh.num_pods):
        prefix = "spine" if sh.levels == 2 else f"spine-p{p + 1:0{pw}d}-"
        spines.append([w.add_switch(f"{prefix}{j + 1:0{sw}d}", role="spine", ports=sh.radix, level=2)
                       for j in range(sh.spines_per_pod)])
        for unit in leaves[p * sh.units_per_pod:(p + 1) * sh.units_per_pod]:
            for leaf in unit:
                for spine in spines[p]:
                    w.connect(leaf, spine, gbps=gbps, latency_us=lat, count=sh.leaf_spine_cables)
    for j in range(sh.spines_per_pod if sh.levels == 3 else 0):
        for c in range(sh.cores_per_plane):
            core = w.add_switch(f"core-{j + 1:0{sw}d}-{c + 1:02d}", role="core", ports=sh.radix, level=3)
            for p in range(sh.num_pods):
                w.connect(spines[p][j], core, gbps=gbps, latency_us=lat, count=sh.spine_core_cables)
    resolved = spec.model_copy(update={"levels": sh.levels, "nodes_per_leaf": sh.nodes_per_unit,
                                       "leaves_per_pod": sh.units_per_pod, "link_gbps": gbps})
    shape = {**asdict(sh), "num_leaves": sh.num_leaves, "num_spines": sh.num_spines, "num_cores": sh.num_cores}
    params = {"source": "generator", "spec": resolved.model_dump(mode="json"), "shape": shape}
    return w, describe(sh, spec, num_nodes), params


def describe(sh: FatTreeShape, spec: FatTreeSpec, num_nodes: int) -> str:
    unit = (f"{count(sh.num_units, 'unit')} of {sh.nodes_per_unit} ({sh.rails} rail leaves each)"
            if spec.rail_optimized else f"{count(sh.num_units, 'leaf', 'leaves')} of {sh.nodes_per_unit}")
    pods = f", {count(sh.num_pods, 'pod')} of {sh.units_per_pod}" if sh.levels == 3 else ""
    switches = (f"{count(sh.num_leaves, 'leaf', 'leaves')}, {count(sh.num_spines, 'spine')}"
                + (f", {count(sh.num_cores, 'core')}" if sh.levels == 3 else ""))
    taper = ":1, ".join(f"{x:g}" for x in spec.oversubscription[:sh.levels - 1]) + ":1"
    rails = "rail-optimized " if spec.rail_optimized else ""
    return (f"{rails}fat-tree, {sh.levels} levels of {sh.radix}-port switches ({taper}): {num_nodes} nodes in "
            f"{unit}{pods}; {switches}")
