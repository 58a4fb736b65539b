"""InfiniBand `ibnetdiscover` output (infiniband-diags / rdma-core) as sites produce it, made into a fabric.

    vendid=0x2c9
    devid=0xd2f0
    sysimgguid=0x98039b0300a1b2c0
    switchguid=0x98039b0300a1b2c0(98039b0300a1b2c0)
    Switch  41 "S-98039b0300a1b2c0"  # "MF0;leaf01:MQM8700/U1" enhanced port 0 lid 3 lmc 0
    [1]     "H-1c34da0300786a10"[1](1c34da0300786a10)  # "gpu001 mlx5_0" lid 11 4xHDR
    [21]    "S-98039b0300a1c3d0"[1]                    # "MF0;spine01:MQM8700/U1" lid 7 4xHDR
    [41]    "H-98039b0300a1b2c8"[1](98039b0300a1b2c8)  # "Mellanox Technologies Aggregation Node" lid 4 4xHDR

    Ca      1 "H-1c34da0300786a10"   # "gpu001 mlx5_0"
    [1](1c34da0300786a10)  "S-98039b0300a1b2c0"[1]   # lid 11 lmc 0 "MF0;leaf01:MQM8700/U1" lid 3 4xHDR

or the same as `ibnetdiscover -p` writes it, one line per port (`ibnet_lines.py` reads both). Then:

* **Switch-embedded CAs** are no hosts: the SHARP aggregation node of every Quantum switch ("Mellanox
  Technologies Aggregation Node"), a CA sharing its system image GUID with a switch, or an unnamed CA on a
  switch's internal top port (41 of a "Switch 41").
* **Hosts** are named by the node name map when it has the CA's GUID, else by the CA's description (first
  word: `dgx-042 HCA-1` -> dgx-042); a CA that names no host is refused, naming the line (give its host in
  `--node-name-map`). A host's CAs are grouped into one node; its NICs are their ports in natural order of
  name, then of the switch they plug into.
* **Switches** are named from their description (`MF0;leaf01:MQM8700/U1` -> leaf01; a name shared by
  several switches gets its GUID appended); ports are the external ones: port 0 (management) and the
  internal aggregation port are not counted. Levels come from the cabling: leaves are the switches with
  hosts, spines and super-spines (core) by hops from the nearest leaf; a switch's name is a hint only for
  switches the cabling leaves open (a host-less leaf, a switch no leaf reaches).
* **Loopback cables** (a port cabled to another port of the same switch) are ignored and counted.
* Every link is listed from both ends and both ends must agree. Speed is width x lane rate (`4xHDR`).
"""

from __future__ import annotations

import numpy as np

from moeplace.topologies.ibnet_lines import Node, read_nodes
from moeplace.topologies.ibnet_names import host_of, is_aggregation_node, level_hint, model_ports, switch_name
from moeplace.topologies.imports import DEFAULT_LINK_LATENCY_US, Imported, line_error, natural_key
from moeplace.topologies.network import UNREACHABLE, bfs_hops
from moeplace.topologies.wiring import ROLES, Wiring


def _check_links(nodes: dict[str, Node], source: str, last_line: int, layout: str) -> None:
    own = "line" if layout == "ports" else "block"
    for node in nodes.values():
        if not node.ports and node.listed:
            raise line_error(source, node.lineno, node.text, f"{node.ident} has no port lines (truncated?)")
        for port, p in node.ports.items():
            other = nodes.get(p.peer)
            if other is None or not other.listed:
                raise line_error(source, p.lineno, p.text, f"{p.peer} has no {own} of its own (the file is truncated "
                                 f"or incomplete; it ends at line {last_line})")
            back = other.ports.get(p.peer_port)
            if back is None:
                raise line_error(source, p.lineno, p.text, f"{p.peer} lists no port {p.peer_port} (the file is "
                                 f"truncated or incomplete)")
            if (back.peer, back.peer_port) != (node.ident, port):
                raise line_error(source, p.lineno, p.text, f"{node.ident}[{port}] -> {p.peer}[{p.peer_port}], but "
                                 f"line {back.lineno} says {p.peer}[{p.peer_port}] -> {back.peer}[{back.peer_port}]")


def _embedded(ca: Node, nodes: dict[str, Node], switch_images: set[int], name: str) -> bool:
    """A CA inside a switch (SHARP aggregation node, management CA), not a host."""
    if is_aggregation_node(name) or (ca.sysimg is not None and ca.sysimg in switch_images):
        return True
    if host_of(name) is None and len(ca.ports) == 1:
        p = next(iter(ca.ports.values()))
        sw = nodes.get(p.peer)
        return sw is not None and sw.kind == "Switch" and p.peer_port == sw.nports and sw.nports % 2 == 1
    return False


def _radix(s: Node, internal: set[int]) -> int:
    """External ports: the node line's count (-p: the highest port seen, or the model's) less an internal top port."""
    n = max(s.nports, model_ports(s.desc))
    if n % 2 == 1 and (n in internal or n not in s.ports):
        n -= 1
    return max(n, max((p for p in s.ports if p not in internal), default=0))


def _levels(switches: list[Node], names: dict[str, str], leaf: np.ndarray, w: Wiring) -> np.ndarray:
    """Level of each switch: 1 for a leaf, else 1 + hops to the nearest leaf; names decide only open cases."""
    S = len(switches)
    adj = np.zeros((S, S), dtype=bool)
    for s1, s2 in w.cables:
        adj[s1, s2] = adj[s2, s1] = True
    dist = bfs_hops(adj)
    nearest = dist[:, leaf].min(axis=1).astype(np.int64) if leaf.any() else np.full(S, UNREACHABLE)
    level = np.where(nearest >= UNREACHABLE, 0, nearest + 1)
    for i, s in enumerate(switches):
        hint = level_hint(names[s.ident])
        if level[i] == 0:
            level[i] = hint
        elif not leaf[i] and hint == 1 and adj[i].any() and np.all(level[adj[i]] == 2):
            level[i] = 1                    # a leaf without hosts, cabled to spines only
    return level


def parse_ibnetdiscover(text: str, source: str, *, name_map: dict[int, str] | None = None,
                        map_source: str | None = None) -> Imported:
    nodes, layout = read_nodes(text, source)
    last = len(text.splitlines())
    if not nodes:
        raise line_error(source, max(last, 1), "", "no Switch or Ca block")
    _check_links(nodes, source, last, layout)
    name_map = name_map or {}

    def name(n: Node) -> str:
        """The map's name for the node (a -p CA port: its port GUID, else the node GUID it implies), else its own."""
        if n.guid in name_map:
            return name_map[n.guid]
        if layout == "ports" and n.kind == "Ca" and n.guid - min(n.ports, default=1) in name_map:
            return name_map[n.guid - min(n.ports, default=1)]
        return n.desc

    switches = sorted((n for n in nodes.values() if n.kind == "Switch"), key=lambda n: n.lineno)
    images = {s.sysimg for s in switches if s.sysimg is not None}
    cas = sorted((n for n in nodes.values() if n.kind == "Ca"), key=lambda n: n.lineno)
    embedded = [ca for ca in cas if _embedded(ca, nodes, images, name(ca))]
    skip = {ca.ident for ca in embedded}
    unnamed = [ca for ca in cas if ca.ident not in skip and host_of(name(ca)) is None]
    if unnamed:
        ca = unnamed[0]
        more = f" (and {len(unnamed) - 1} more CAs)" if len(unnamed) > 1 else ""
        where = (f"not in the node name map {map_source} either" if map_source
                 else "name their hosts with --node-name-map FILE")
        what = (f"names no host in its description {ca.desc!r}" if ca.desc
                else "has no node description to name its host")
        raise line_error(source, ca.lineno, ca.text, f"CA {ca.ident} {what}{more}: {where}")
    by_base: dict[str, list[Node]] = {}
    for s in switches:
        by_base.setdefault(switch_name(name(s)) or s.ident, []).append(s)
    names = {s.ident: base if len(group) == 1 else f"{base} {s.ident}" for base, group in by_base.items()
             for s in group}
    w = Wiring()
    index: dict[str, int] = {}
    for s in switches:
        internal = {p for p, port in s.ports.items() if port.peer in skip}
        index[s.ident] = w.add_switch(names[s.ident], ports=_radix(s, internal))
    nic_rows: list[tuple[str, tuple, int, float]] = []
    ca_loops = 0
    for ca in cas:
        if ca.ident in skip:
            continue
        host = host_of(name(ca))
        for port, p in ca.ports.items():
            if p.peer == ca.ident:
                ca_loops += port < p.peer_port
                continue
            if p.peer not in index:
                raise line_error(source, p.lineno, p.text, "a CA port cabled to another CA (no switch) is not "
                                 "supported")
            nic_rows.append((host, natural_key(name(ca)) + (natural_key(names[p.peer]), port), index[p.peer], p.gbps))
    for host, _, s, gbps in sorted(nic_rows, key=lambda r: (natural_key(r[0]), r[1])):
        w.attach(host, s, gbps=gbps, latency_us=DEFAULT_LINK_LATENCY_US)
    for s in switches:
        for port, p in s.ports.items():
            if p.peer in index and (s.ident, port) < (p.peer, p.peer_port):
                w.connect(index[s.ident], index[p.peer], gbps=p.gbps, latency_us=DEFAULT_LINK_LATENCY_US)
    leaf = np.zeros(len(switches), dtype=bool)
    for nics in w.nics.values():
        for s, _, _ in nics:
            leaf[s] = True
    level = _levels(switches, names, leaf, w)
    w.levels = [int(x) for x in level]
    w.roles = [ROLES.get(int(x), f"level{int(x)}") if x else "unconnected" for x in level]
    hosts = sorted(w.host_names, key=natural_key)
    return Imported(kind="ibnetdiscover", source=source, wiring=w, hosts=hosts,
                    summary=_summary(w, hosts, len(nic_rows), layout, len(embedded), w.loopbacks + ca_loops))


def _summary(w: Wiring, hosts: list[str], nics: int, layout: str, embedded: int, loops: int) -> str:
    counts: dict[str, int] = {}
    for role in w.roles:
        counts[role] = counts.get(role, 0) + 1
    order = sorted(counts, key=lambda r: (min(lv for lv, ro in zip(w.levels, w.roles) if ro == r) or 99, r))
    levels = ", ".join(f"{counts[r]} {r}" for r in order)
    per_host = sorted({len(w.nics[h]) for h in hosts})
    per = f", {per_host[0]} per host" if len(per_host) == 1 else ""
    out = (f"ibnetdiscover{' -p' if layout == 'ports' else ''}: {len(hosts)} hosts ({nics} HCA ports{per}), "
           f"{len(w.switches)} switches ({levels}), {len(w.cables)} switch pairs cabled")
    rails = _rail_units(w, hosts)
    if rails:
        out += f", rail-optimized ({rails[0]} units of {rails[1]} rail leaves)" if rails[1] else \
            f", rail-optimized ({rails[0]} units)"
    if embedded:
        out += f"; {embedded} switch-embedded CAs (SHARP) left out"
    if loops:
        out += f"; {loops} loopback cable{'s' if loops != 1 else ''} ignored"
    return out


def _rail_units(w: Wiring, hosts: list[str]) -> tuple[int, int] | None:
    """(units, leaves per unit, 0 when units differ) when some host's NICs plug into several leaves, else None."""
    if not any(len({s for s, _, _ in w.nics[h]}) > 1 for h in hosts):
        return None
    parent = list(range(len(w.switches)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for h in hosts:
        first = find(w.nics[h][0][0])
        for s, _, _ in w.nics[h][1:]:
            parent[find(s)] = first
    units: dict[int, set[int]] = {}
    for h in hosts:
        for s, _, _ in w.nics[h]:
            units.setdefault(find(s), set()).add(s)
    sizes = {len(v) for v in units.values()}
    return len(units), (sizes.pop() if len(sizes) == 1 else 0)
