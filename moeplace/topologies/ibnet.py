"""InfiniBand `ibnetdiscover` output (the default topology file of infiniband-diags / rdma-core).

A file is a sequence of node blocks:

    vendid=0x2c9                                   header lines: vendid, devid, sysimgguid, switchguid,
    devid=0xcf08                                   caguid (any order, ignored)
    switchguid=0x98039b0300a1b2c0(98039b0300a1b2c0)
    Switch  41 "S-98039b0300a1b2c0"  # "MF0;leaf01:MQM8700/U1" enhanced port 0 lid 3 lmc 0
    [1]     "H-1c34da0300786a10"[1](1c34da0300786a10)  # "gpu001 mlx5_0" lid 11 4xHDR
    [21]    "S-98039b0300a1c3d0"[1]                    # "MF0;spine01:MQM8700/U1" lid 7 4xHDR

    Ca      1 "H-1c34da0300786a10"   # "gpu001 mlx5_0"
    [1](1c34da0300786a10)  "S-98039b0300a1b2c0"[1]   # lid 11 lmc 0 "MF0;leaf01:MQM8700/U1" lid 3 4xHDR

plus `#` comments, blank lines and the `-g` grouping headers (`Chassis ...`, `Non-Chassis Nodes`, `[ext N]`).
Every link is listed from both ends and both ends must agree. Hosts are grouped from CA node descriptions:
the first word names the host (`gpu001 mlx5_0` -> gpu001), and a host's NICs are its connected CA ports in
natural order of description. A switch is named by its description (`MF0;leaf01:MQM8700/U1` -> leaf01; a
description shared by several switches gets its GUID appended). Link speed is width x lane rate from the
`4xHDR` field. Routers (`Rt`) are not supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from moeplace.topologies.imports import DEFAULT_LINK_LATENCY_US, Imported, line_error, natural_key
from moeplace.topologies.wiring import Wiring

LANE_GBPS = {"SDR": 2.5, "DDR": 5.0, "QDR": 10.0, "FDR10": 10.0, "FDR": 14.0625, "EDR": 25.0, "HDR": 50.0,
             "NDR": 100.0, "XDR": 200.0}
_HEADER = re.compile(r"^(vendid|devid|sysimgguid|switchguid|caguid|rtguid)=0x[0-9a-fA-F]+(\([0-9a-fA-F]+\))?$")
_NODE = re.compile(r'^(Switch|Ca|Rt)\s+(\d+)\s+"([SHR])-([0-9a-fA-F]+)"\s*(?:#\s*"([^"]*)"(.*))?$')
_PORT = re.compile(r'^\[(\d+)\](?:\(([0-9a-fA-F]+)\))?(?:\[ext \d+\])?\s+"([SHR])-([0-9a-fA-F]+)"\[(\d+)\]'
                   r'(?:\(([0-9a-fA-F]+)\))?(?:\[ext \d+\])?\s*(#.*)?$')
_SPEED = re.compile(r"\b(\d+)x([A-Z]+\d*)\s*$")
_GROUPING = re.compile(r"^(Non-Chassis Nodes|Chassis .*)$")


@dataclass
class _Node:
    kind: str
    ident: str
    nports: int
    desc: str
    lineno: int
    text: str
    ports: dict[int, tuple[str, int, float, int, str]] = field(default_factory=dict)  # port -> peer, pport, gbps, line


def _parse(text: str, source: str) -> dict[str, _Node]:
    nodes: dict[str, _Node] = {}
    cur: _Node | None = None
    lines = text.splitlines()
    last = max((i for i, x in enumerate(lines, 1) if x.strip()), default=0)
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#") or _HEADER.match(line) or _GROUPING.match(line):
            continue
        m = _NODE.match(line)
        if m:
            kind, nports, prefix, guid, desc, _ = m.groups()
            if kind == "Rt":
                raise line_error(source, lineno, raw, "routers (Rt) are not supported")
            ident = f"{prefix}-{guid.lower()}"
            if ident in nodes:
                first = nodes[ident].lineno
                raise line_error(source, lineno, raw, f"{ident} has a second block (first at line {first})")
            cur = nodes[ident] = _Node(kind, ident, int(nports), desc or "", lineno, raw)
            continue
        m = _PORT.match(line)
        if not m:
            hint = " (the file looks truncated)" if lineno == last else ""
            raise line_error(source, lineno, raw, f"unrecognised line{hint}")
        if cur is None:
            raise line_error(source, lineno, raw, "port line outside a Switch or Ca block")
        port, _, prefix, guid, pport, _, comment = m.groups()
        port, pport = int(port), int(pport)
        if not 1 <= port <= cur.nports:
            raise line_error(source, lineno, raw, f"port {port} of {cur.ident}, which has {cur.nports} ports")
        if port in cur.ports:
            raise line_error(source, lineno, raw, f"port {port} of {cur.ident} is listed twice")
        speed = _SPEED.search(comment or "")
        if not speed or speed.group(2) not in LANE_GBPS:
            raise line_error(source, lineno, raw, "no link width and speed such as 4xHDR at the end of the line")
        gbps = int(speed.group(1)) * LANE_GBPS[speed.group(2)]
        cur.ports[port] = (f"{prefix}-{guid.lower()}", pport, gbps, lineno, raw)
    return nodes


def _check_links(nodes: dict[str, _Node], source: str, last_line: int) -> None:
    for node in nodes.values():
        if not node.ports:
            raise line_error(source, node.lineno, node.text, f"{node.ident} has no port lines (truncated?)")
        for port, (peer, pport, _, lineno, raw) in node.ports.items():
            other = nodes.get(peer)
            if other is None:
                raise line_error(source, lineno, raw, f"{peer} has no block of its own (the file is truncated or "
                                 f"incomplete; it ends at line {last_line})")
            back = other.ports.get(pport)
            if back is None:
                raise line_error(source, lineno, raw, f"{peer} lists no port {pport} (the file is truncated or "
                                 f"incomplete)")
            if back[:2] != (node.ident, port):
                raise line_error(source, lineno, raw, f"{node.ident}[{port}] -> {peer}[{pport}], but line {back[3]} "
                                 f"says {peer}[{pport}] -> {back[0]}[{back[1]}]")


def _switch_name(desc: str) -> str:
    m = re.match(r"^MF0;([^:]+):", desc)
    return (m.group(1) if m else desc).strip()


def parse_ibnetdiscover(text: str, source: str) -> Imported:
    nodes = _parse(text, source)
    last = len(text.splitlines())
    if not nodes:
        raise line_error(source, max(last, 1), "", "no Switch or Ca block")
    _check_links(nodes, source, last)
    switches = sorted((n for n in nodes.values() if n.kind == "Switch"), key=lambda n: n.lineno)
    cas = [n for n in nodes.values() if n.kind == "Ca"]
    names: dict[str, str] = {}
    by_desc: dict[str, list[_Node]] = {}
    for s in switches:
        by_desc.setdefault(_switch_name(s.desc) or s.ident, []).append(s)
    for base, group in by_desc.items():
        for s in group:
            names[s.ident] = base if len(group) == 1 else f"{base} {s.ident}"
    w = Wiring()
    index = {s.ident: w.add_switch(names[s.ident], ports=s.nports) for s in switches}
    nic_rows: list[tuple[str, tuple, int, int]] = []
    for ca in cas:
        host = ca.desc.split()[0] if ca.desc.split() else ""
        if not host:
            raise line_error(source, ca.lineno, ca.text, f"{ca.ident} has no node description to name its host")
        for port, (peer, _, gbps, lineno, raw) in ca.ports.items():
            if peer not in index:
                raise line_error(source, lineno, raw, "a CA port cabled to another CA (no switch) is not supported")
            nic_rows.append((host, natural_key(ca.desc) + (port,), index[peer], gbps))
    for host, _, s, gbps in sorted(nic_rows, key=lambda r: (natural_key(r[0]), r[1])):
        w.attach(host, s, gbps=gbps, latency_us=DEFAULT_LINK_LATENCY_US)
    for s in switches:
        for port, (peer, pport, gbps, _, _) in s.ports.items():
            if peer in index and (s.ident, port) < (peer, pport):
                w.connect(index[s.ident], index[peer], gbps=gbps, latency_us=DEFAULT_LINK_LATENCY_US)
    hosts = sorted(w.host_names, key=natural_key)
    nics = len(nic_rows)
    summary = (f"ibnetdiscover: {len(hosts)} hosts ({nics} HCA ports), {len(switches)} switches, "
               f"{len(w.cables)} switch pairs cabled")
    return Imported(kind="ibnetdiscover", source=source, wiring=w, hosts=hosts, summary=summary)
