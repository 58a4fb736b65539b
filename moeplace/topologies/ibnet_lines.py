"""Reading `ibnetdiscover` output line by line, in its two layouts, into nodes and their cabled ports.

Default layout (node blocks; see `ibnet.py` for an example): header lines (`vendid=`, `devid=`,
`sysimgguid=`, `switchguid=`, `caguid=`), a `Switch N "S-<guid>" # "desc" ...` or `Ca N "H-<guid>" # "desc"`
line, then one line per cabled port: `[p] "S-<guid>"[q] # "desc" lid L 4xHDR` (a CA's own ports carry their
port GUID: `[1](<guid>)`). `ibnetdiscover -p` layout, one line per port:

    SW     3 21 0x98039b0300a1b200 4x HDR - SW    17  1 0x98039b0300a1b210 ( 'MF0;leaf1:MQM8700/U1' - '...' )
    CA    23  1 0x1c34da0300786a00 4x HDR - SW     1  1 0x98039b0300a1b200 ( 'gpu001 mlx5_0' - '...' )

A -p file names CA ports by their port GUID, so each CA port is a node of its own here. Both layouts skip a
UTF-8 byte-order mark, blank lines, `#` comments, the `-g` grouping lines and the shell prompt the output
was captured under (`[root@ufm dgxa100]# ibnetdiscover`, `admin@ufm:~$ ibnetdiscover -p`). A line that is
none of these is refused with its number and what is wrong with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from moeplace.topologies.imports import line_error

LANE_GBPS = {"SDR": 2.5, "DDR": 5.0, "QDR": 10.0, "FDR10": 10.0, "FDR": 14.0625, "EDR": 25.0, "HDR": 50.0,
             "NDR": 100.0, "XDR": 200.0}
_GUID = r"[0-9a-fA-F]{1,16}"
_HEADER = re.compile(r"^(vendid|devid|sysimgguid|switchguid|caguid|rtguid)\s*=\s*0x([0-9a-fA-F]+)(\([0-9a-fA-F]+\))?$")
_NODE = re.compile(rf'^(Switch|Ca|Rt)\s+(\d+)\s+"([SHR])-({_GUID})"\s*(?:#\s*"(.*)"(.*))?$')
_EXT = r"(?:\[ext \d+\])?"
_PORT = re.compile(rf'^\[(\d+)\](?:\(({_GUID})\))?{_EXT}\s+"([SHR])-({_GUID})"\[(\d+)\]{_EXT}'
                   rf'(?:\(({_GUID})\))?{_EXT}\s*(#.*)?$')
_SPEED = re.compile(r"\b(\d+)x(" + "|".join(sorted(LANE_GBPS, key=len, reverse=True)) + r")\b")
_GROUPING = re.compile(r"^(Non-Chassis Nodes|Chassis .*)$")
_PORTS_SIDE = r"(SW|CA|RT)\s+(\d+)\s+(\d+)\s+0x({guid})"
PORTS_START = re.compile(r"^(SW|CA|RT)\s+\d+\s+\d+\s+0x")
_PORTS = re.compile(r"^" + _PORTS_SIDE.format(guid=_GUID) + r"\s+(\d+)x\s+(.+?)\s+-\s+"
                    + _PORTS_SIDE.format(guid=_GUID) + r"\s+\(\s*'(.*)'\s+-\s+'(.*)'\s*\)\s*$")
_PORTS_DOWN = re.compile(r"^" + _PORTS_SIDE.format(guid=_GUID) + r"\s+\S+\s+.*'(.*)'\s*$")
_LANE_TEXT = re.compile(r"^(\d+(?:\.\d+)?)\s*Gbps$")
_PROMPT = re.compile(r"^(\[[^\[\]]*@[^\[\]]*\]\s*[#$%>]|[\w.-]+@[\w.-]+(:\S*)?\s*[#$%>](\s|$))")


def is_prompt(line: str) -> bool:
    """A shell prompt captured with the output: `[root@ufm dgxa100]# ibnetdiscover`, `me@host:~$ ...`."""
    return bool(_PROMPT.match(line.strip()))


def is_ibnet_line(line: str) -> bool:
    """True for a line only ibnetdiscover writes (for sniffing a file's format)."""
    s = line.strip()
    return bool(_HEADER.match(s) or re.match(r"^\[\d+\]", s) or re.match(r'^(Switch|Ca|Rt)\s+\d+\s+"', s)
                or s.startswith(("Non-Chassis Nodes", "Chassis ")) or PORTS_START.match(s))


@dataclass
class Port:
    peer: str          # ident of the node at the other end
    peer_port: int
    gbps: float
    lineno: int
    text: str


@dataclass
class Node:
    kind: str          # "Switch" or "Ca"
    ident: str         # "S-<16 hex>" or "H-<16 hex>"
    guid: int          # the node GUID (a CA port's GUID in a -p file)
    nports: int        # ports the node line gives (-p: the highest port seen)
    desc: str
    lineno: int
    text: str
    sysimg: int | None = None
    ports: dict[int, Port] = field(default_factory=dict)
    listed: bool = True   # False for a -p node seen only at the far end of other nodes' lines


def ident(prefix: str, guid: str) -> str:
    return f"{prefix}-{int(guid, 16):016x}"


def significant_lines(text: str):
    """(line number, raw line, stripped line) of every line that is not blank, a comment or a prompt."""
    for lineno, raw in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        s = raw.strip()
        if s and not s.startswith("#") and not _GROUPING.match(s) and not is_prompt(s):
            yield lineno, raw, s


def read_nodes(text: str, source: str) -> tuple[dict[str, Node], str]:
    """Every node of the file with its cabled ports, and the layout ("default" or "ports")."""
    lines = list(significant_lines(text))
    last = lines[-1][0] if lines else 0
    first = next((s for _, _, s in lines if not _HEADER.match(s)), "")
    if PORTS_START.match(first):
        return _read_ports_layout(lines, source, last), "ports"
    return _read_default_layout(lines, source, last), "default"


def _speed(comment: str, source: str, lineno: int, raw: str) -> float:
    m = None
    for m in _SPEED.finditer(comment or ""):
        pass
    if m is None:
        raise line_error(source, lineno, raw, "no link width and speed such as 4xHDR at the end of the line")
    return int(m.group(1)) * LANE_GBPS[m.group(2)]


def _read_default_layout(lines, source: str, last: int) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    cur: Node | None = None
    sysimg: int | None = None
    for lineno, raw, line in lines:
        h = _HEADER.match(line)
        if h:
            if h.group(1) == "sysimgguid":
                sysimg = int(h.group(2), 16)
            continue
        m = _NODE.match(line)
        if m:
            kind, nports, prefix, guid, desc, _ = m.groups()
            if kind == "Rt":
                raise line_error(source, lineno, raw, "routers (Rt) are not supported")
            key = ident(prefix, guid)
            if key in nodes:
                raise line_error(source, lineno, raw, f"{key} has a second block (first at line {nodes[key].lineno})")
            cur = nodes[key] = Node(kind, key, int(guid, 16), int(nports), (desc or "").strip(), lineno, raw, sysimg)
            sysimg = None
            continue
        m = _PORT.match(line)
        if not m:
            hint = "the file looks truncated" if lineno == last else diagnose(line, cur)
            raise line_error(source, lineno, raw, f"unrecognised line ({hint})")
        if cur is None:
            raise line_error(source, lineno, raw, "port line outside a Switch or Ca block")
        port, own_guid, prefix, guid, pport, _, comment = m.groups()
        port, pport = int(port), int(pport)
        if cur.kind == "Switch" and own_guid is not None:
            raise line_error(source, lineno, raw, f"'({own_guid})' after port [{port}] of a switch: ibnetdiscover "
                             f"writes a GUID there only on CA ports (ibdiagnet-style port labels are not read)")
        if port == 0:
            continue                      # the management port: no cable
        if port > cur.nports:
            raise line_error(source, lineno, raw, f"port {port} of {cur.ident}, which has {cur.nports} ports")
        if port in cur.ports:
            raise line_error(source, lineno, raw, f"port {port} of {cur.ident} is listed twice")
        gbps = _speed(comment, source, lineno, raw)
        cur.ports[port] = Port(ident(prefix, guid), pport, gbps, lineno, raw)
    return nodes


def diagnose(line: str, cur: Node | None) -> str:
    """What is wrong with a line no pattern takes, in words."""
    m = re.match(r"^\[([^\]]*)\]", line)
    if m is None:
        if re.match(r"^(Switch|Ca|Rt)\b", line):
            bad = re.search(r'"([A-Za-z])-([^"]*)"', line)
            if bad and not re.fullmatch(_GUID, bad.group(2)):
                return f"GUID {bad.group(1)}-{bad.group(2)} is not hexadecimal (hand-edited?)"
            return 'expected Switch|Ca <ports> "S-<guid>"|"H-<guid>" # "description"'
        if PORTS_START.match(line):
            return "a -p port line in a file of node blocks"
        return ("not ibnetdiscover output: expected a vendid=/devid=/...guid= header, a Switch or Ca line, or a "
                "[port] line")
    if not m.group(1).isdigit():
        return f"port [{m.group(1)}] is not a number"
    rest = line[m.end():]
    paren = re.match(r"^\(([^)]*)\)", rest)
    if paren:
        if cur is not None and cur.kind == "Switch":
            return (f"'({paren.group(1)})' after port [{m.group(1)}] of a switch: ibnetdiscover writes a GUID there "
                    f"only on CA ports (ibdiagnet-style port labels are not read)")
        if not re.fullmatch(_GUID, paren.group(1)):
            return f"port GUID ({paren.group(1)}) is not hexadecimal"
        rest = rest[paren.end():]
    peer = re.search(r'"([^"]*)"', rest)
    if peer is None:
        return f'port [{m.group(1)}] has no peer such as "S-<guid>"[port] after it'
    pm = re.fullmatch(r"([A-Za-z])-(.*)", peer.group(1))
    if pm is None or pm.group(1) not in "SHR":
        return f'peer "{peer.group(1)}" is not S-<guid>, H-<guid> or R-<guid>'
    if not re.fullmatch(_GUID, pm.group(2)):
        return f"GUID {peer.group(1)} is not hexadecimal (hand-edited?)"
    after = rest[peer.end():]
    if not re.match(r"^\[\d+\]", after):
        return f"no port number [N] after the peer {peer.group(1)}"
    tail = re.sub(r"^\[\d+\](\[ext \d+\])?", "", after)
    paren = re.match(r"^\(([^)]*)\)", tail)
    if paren and not re.fullmatch(_GUID, paren.group(1)):
        return f"peer port GUID ({paren.group(1)}) is not hexadecimal (hand-edited?)"
    return "text after the peer's port is not a # comment"


def _lane_gbps(text: str) -> float | None:
    t = text.strip().upper()
    if t in LANE_GBPS:
        return LANE_GBPS[t]
    m = _LANE_TEXT.match(text.strip())
    return float(m.group(1)) if m else None


def _read_ports_layout(lines, source: str, last: int) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    for lineno, raw, line in lines:
        if _HEADER.match(line) or _NODE.match(line) or _PORT.match(line):
            raise line_error(source, lineno, raw, "a node-block line in a -p (one line per port) file")
        m = _PORTS.match(line)
        if m is None:
            if _PORTS_DOWN.match(line) and " - " not in line:
                continue                  # a port with nothing cabled to it
            if lineno == last:
                hint = "the file looks truncated"
            elif PORTS_START.match(line):
                hint = "expected TYPE LID PORT 0xGUID 4x HDR - TYPE LID PORT 0xGUID ( 'name' - 'name' )"
            else:
                hint = "not an ibnetdiscover -p line"
            raise line_error(source, lineno, raw, f"unrecognised line ({hint})")
        t1, _, p1, g1, width, speed, t2, _, p2, g2, name1, name2 = m.groups()
        if "RT" in (t1, t2):
            raise line_error(source, lineno, raw, "routers (RT) are not supported")
        lane = _lane_gbps(speed)
        if lane is None:
            raise line_error(source, lineno, raw, f"unknown link speed {speed!r} (expected SDR ... XDR)")
        a, b = _ports_node(nodes, t1, g1, name1, lineno, raw), _ports_node(nodes, t2, g2, name2, lineno, raw)
        if not a.listed:
            a.listed, a.lineno, a.text = True, lineno, raw
        p1, p2 = int(p1), int(p2)
        if p1 == 0:
            continue
        if p1 in a.ports:
            raise line_error(source, lineno, raw, f"port {p1} of {a.ident} is listed twice "
                             f"(first at line {a.ports[p1].lineno})")
        a.ports[p1] = Port(b.ident, p2, int(width) * lane, lineno, raw)
        a.nports = max(a.nports, p1)
        b.nports = max(b.nports, p2)
    return nodes


def _ports_node(nodes: dict[str, Node], kind: str, guid: str, name: str, lineno: int, raw: str) -> Node:
    key = ident("S" if kind == "SW" else "H", guid)
    node = nodes.get(key)
    if node is None:
        node = nodes[key] = Node("Switch" if kind == "SW" else "Ca", key, int(guid, 16), 0, name.strip(), lineno, raw,
                                 listed=False)
    return node
