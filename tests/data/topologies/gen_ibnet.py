"""Writes ibnetdiscover sample files in the exact layouts infiniband-diags prints (default and `-p`).

    python tests/data/topologies/gen_ibnet.py            # rewrites the committed samples beside this file
    python tests/data/topologies/gen_ibnet.py superpod OUT   # one fabric to OUT (superpod, ndr-pod, ...)

Fabrics (all deterministic):
  superpod        DGX A100 SuperPOD-class, HDR, 3 levels: 8 scalable units x 20 DGX x 8 HCAs (mlx5_0-3, 6-9),
                  8 rail leaves per unit, 10 spines per unit (2 cables per leaf), 10 planes of 4 super-spines
                  (4 cables per spine): 64 lf + 80 sp + 40 ss = 184 QM8700 ("Switch 41"), each with its SHARP
                  aggregation node on port 41; loopback plugs on ports 39-40 of 19 super-spines.
  ndr-pod         NDR rail-optimized pod: `units` x `hosts` DGX H100 with factory-named ConnectX-7 HCAs
                  ("MT4129 ConnectX-7 Mellanox Technologies"), 8 rail leaves per unit, 4 spines per rail that
                  take that rail's leaves of every unit (QM9700, "Switch 65", SHARP on port 65); a node name map
                  (GUID "dgx-h100-NNN mlx5_R") names the HCAs; 4 loopbacks on spare spine ports.
  lassen-p        `ibnetdiscover -p` dump: 2 leaves x 6 hosts with 2 HCAs ("lassenNN mlx5_0/1"), 2 spines.
  prompt-bom      a small 2-level fabric saved with a UTF-8 BOM, the shell prompts it was captured under, and
                  one loopback cable.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SAMPLES = {"ndr-pod-2x8.ibnetdiscover": ("ndr-pod", {"units": 2, "hosts": 8}),
           "lassen-ports.ibnetdiscover": ("lassen-p", {}),
           "prompt-bom.ibnetdiscover": ("prompt-bom", {})}


@dataclass
class Node:
    kind: str                  # "SW" or "CA"
    guid: int
    desc: str
    nports: int
    lid: int
    devid: int
    sysimg: int
    ports: dict[int, tuple["Node", int]] = field(default_factory=dict)


@dataclass
class Net:
    speed: str = "HDR"
    nodes: list[Node] = field(default_factory=list)
    lid: int = 0

    def node(self, kind: str, guid: int, desc: str, nports: int, devid: int, sysimg: int | None = None) -> Node:
        self.lid += 1
        n = Node(kind, guid, desc, nports, self.lid, devid, guid if sysimg is None else sysimg)
        self.nodes.append(n)
        return n

    def cable(self, a: Node, pa: int, b: Node, pb: int) -> None:
        assert pa not in a.ports and pb not in b.ports, (a.desc, pa, b.desc, pb)
        a.ports[pa] = (b, pb)
        b.ports[pb] = (a, pa)

    def switch(self, guid: int, name: str, model: str, nports: int, devid: int, sharp: bool = True) -> Node:
        s = self.node("SW", guid, f"MF0;{name}:{model}/U1", nports, devid)
        if sharp:
            an = self.node("CA", guid + 8, "Mellanox Technologies Aggregation Node", 1, 0xcf09)
            self.cable(s, nports, an, 1)
        return s


def _link(a: Node, p: int, speed: str) -> str:
    b, q = a.ports[p]
    lid = b.lid
    if a.kind == "SW":
        guid = f"({b.guid:x}) " if b.kind == "CA" else ""
        return f'[{p}]\t"{_name(b)}"[{q}]{guid}\t\t# "{b.desc}" lid {lid} 4x{speed}'
    guid = f"({b.guid:x}) " if b.kind == "CA" else ""
    return f'[{p}]({a.guid:x}) \t"{_name(b)}"[{q}]{guid}\t\t# lid {a.lid} lmc 0 "{b.desc}" lid {lid} 4x{speed}'


def _name(n: Node) -> str:
    return f"{'S' if n.kind == 'SW' else 'H'}-{n.guid:016x}"


def default_layout(net: Net, first: Node) -> str:
    """`ibnetdiscover` as it prints: a header comment, switches, then CAs, each a block."""
    out = ["#", "# Topology file: generated on Tue Mar  4 10:12:44 2025", "#",
           f"# Initiated from node {first.guid:016x} port {first.guid:016x}", ""]
    for n in sorted(net.nodes, key=lambda n: n.kind != "SW"):
        kind = "switchguid" if n.kind == "SW" else "caguid"
        out += ["vendid=0x2c9", f"devid=0x{n.devid:x}", f"sysimgguid=0x{n.sysimg:x}",
                f"{kind}=0x{n.guid:x}" + (f"({n.guid:x})" if n.kind == "SW" else "")]
        if n.kind == "SW":
            out.append(f'Switch\t{n.nports} "{_name(n)}"\t\t# "{n.desc}" enhanced port 0 lid {n.lid} lmc 0')
        else:
            out.append(f'Ca\t{n.nports} "{_name(n)}"\t\t# "{n.desc}"')
        out += [_link(n, p, net.speed) for p in sorted(n.ports)]
        out.append("")
    return "\n".join(out)


def ports_layout(net: Net) -> str:
    """`ibnetdiscover -p`: every port of every node, highest port first, both ends of each cable."""
    out = []
    for n in net.nodes:
        for p in sorted(n.ports, reverse=True):
            b, q = n.ports[p]
            out.append(f"{n.kind:>2} {n.lid:5d} {p:2d} 0x{n.guid:016x} 4x {net.speed} - {b.kind:>2} {b.lid:5d} "
                       f"{q:2d} 0x{b.guid:016x} ( '{n.desc}' - '{b.desc}' )")
    return "\n".join(out) + "\n"


def superpod(units: int = 8, hosts: int = 20, rails: int = 8, spines: int = 10, planes_cores: int = 4,
             loopbacks: int = 19) -> tuple[Net, Node]:
    net = Net("HDR")
    sw = 0x98039b0300a10000
    leaves = [[net.switch(sw + 0x100 * u + 0x10 * r, f"lf{u * rails + r + 1:02d}", "MQM8700", 41, 0xd2f0)
               for r in range(rails)] for u in range(units)]
    pods = [[net.switch(sw + 0x10000 + 0x100 * u + 0x10 * j, f"sp{u * spines + j + 1:02d}", "MQM8700", 41, 0xd2f0)
             for j in range(spines)] for u in range(units)]
    cores = [[net.switch(sw + 0x20000 + 0x100 * j + 0x10 * c, f"ss{j * planes_cores + c + 1:02d}", "MQM8700", 41,
                         0xd2f0) for c in range(planes_cores)] for j in range(spines)]
    hca = [0, 1, 2, 3, 6, 7, 8, 9]
    for u in range(units):
        for h in range(hosts):
            n = u * hosts + h + 1
            for r in range(rails):
                ca = net.node("CA", 0x1c34da0300000000 + (n << 8) + r, f"dgx-{n:03d} mlx5_{hca[r]}", 1, 0x101b)
                net.cable(leaves[u][r], h + 1, ca, 1)
        per = 20 // spines
        for r in range(rails):
            for j in range(spines):
                for k in range(per):
                    net.cable(leaves[u][r], 21 + j * per + k, pods[u][j], 1 + r * per + k)
    up = 16 // planes_cores
    for j in range(spines):
        for u in range(units):
            for c in range(planes_cores):
                for k in range(up):
                    net.cable(pods[u][j], 17 + c * up + k, cores[j][c], 1 + u * up + k)
    for s in [c for plane in cores for c in plane][:loopbacks]:
        net.cable(s, 39, s, 40)
    return net, leaves[0][0]


def ndr_pod(units: int = 4, hosts: int = 32, rails: int = 8, spines_per_rail: int = 4,
            loopbacks: int = 4) -> tuple[Net, Node, str]:
    net = Net("NDR")
    sw = 0xb8cef60300a20000
    leaves = [[net.switch(sw + 0x100 * u + 0x10 * r, f"su{u + 1}-r{r}-leaf", "MQM9700", 65, 0xd2f2)
               for r in range(rails)] for u in range(units)]
    spines = [[net.switch(sw + 0x10000 + 0x100 * r + 0x10 * j, f"r{r}-spine{j + 1}", "MQM9700", 65, 0xd2f2)
               for j in range(spines_per_rail)] for r in range(rails)]
    names = ["# node name map for the NDR pod: GUID and name, as ibnetdiscover --node-name-map reads it"]
    for u in range(units):
        for h in range(hosts):
            n = u * hosts + h + 1
            for r in range(rails):
                guid = 0x946dae0300000000 + (n << 8) + r
                ca = net.node("CA", guid, "MT4129 ConnectX-7 Mellanox Technologies", 1, 0x1021)
                net.cable(leaves[u][r], h + 1, ca, 1)
                names.append(f'0x{guid:016x} "dgx-h100-{n:03d} mlx5_{r}"')
    per = hosts // spines_per_rail
    for r in range(rails):
        for j in range(spines_per_rail):
            for u in range(units):
                for k in range(per):
                    net.cable(leaves[u][r], hosts + 1 + j * per + k, spines[r][j], 1 + u * per + k)
    for s in [s for group in spines for s in group][:loopbacks]:
        net.cable(s, 63, s, 64)
    return net, leaves[0][0], "\n".join(names) + "\n"


def small_two_level(hosts_per_leaf: int, nics: int, name: str, loopback: bool) -> tuple[Net, Node]:
    net = Net("HDR")
    sw = 0x0c42a10300b30000
    leaves = [net.switch(sw + 0x10 * i, f"leaf{i + 1:02d}", "MQM8700", 41, 0xd2f0) for i in range(2)]
    spines = [net.switch(sw + 0x1000 + 0x10 * j, f"spine{j + 1:02d}", "MQM8700", 41, 0xd2f0) for j in range(2)]
    for i, leaf in enumerate(leaves):
        for h in range(hosts_per_leaf):
            n = i * hosts_per_leaf + h + 1
            for r in range(nics):
                ca = net.node("CA", 0x043f720300000000 + (n << 8) + r, f"{name}{n:02d} mlx5_{r}", 1, 0x101b)
                net.cable(leaf, h * nics + r + 1, ca, 1)
        for j, sp in enumerate(spines):
            for k in range(4):
                net.cable(leaf, 21 + j * 4 + k, sp, 1 + i * 4 + k)
    if loopback:
        net.cable(spines[1], 19, spines[1], 20)
    return net, leaves[0]


def render(kind: str, **kw) -> tuple[str, str | None]:
    """(file text, node name map text or None) of one fabric."""
    if kind == "superpod":
        net, first = superpod(**kw)
        return default_layout(net, first), None
    if kind == "ndr-pod":
        net, first, names = ndr_pod(**kw)
        return default_layout(net, first), names
    if kind == "lassen-p":
        net, _ = small_two_level(6, 2, "lassen", False)
        return "[root@ufm ~]# ibnetdiscover -p\n" + ports_layout(net), None
    if kind == "prompt-bom":
        net, first = small_two_level(4, 1, "node", True)
        text = default_layout(net, first)
        return "\ufeff[root@ufm dgxa100]# ibnetdiscover\n" + text + "[root@ufm dgxa100]# \n", None
    raise SystemExit(f"unknown fabric {kind!r}")


def main(argv: list[str]) -> None:
    if argv:
        text, names = render(argv[0])
        Path(argv[1]).write_text(text, encoding="utf-8")
        if names:
            Path(argv[1] + ".node-name-map").write_text(names, encoding="utf-8")
        return
    for file, (kind, kw) in SAMPLES.items():
        text, names = render(kind, **kw)
        (HERE / file).write_text(text, encoding="utf-8")
        if names:
            (HERE / file).with_suffix(".node-name-map").write_text(names, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
