"""Names in an ibnetdiscover file: the node name map, host names from CA descriptions, switch-embedded CAs.

Node name map (the file `ibnetdiscover --node-name-map` reads): one node per line, a GUID (`0x` hex, or bare
hex) and its name, quoted; `#` starts a comment; blank lines are skipped.

    # site map
    0x1c34da0300786a00 "dgx-001 mlx5_0"
    0x98039b0300a1b200 "MF0;su1-leaf1:MQM8700/U1"

A name from the map replaces the node's description, as in ibnetdiscover. A host is the first word of its
CA's name (`dgx-042 HCA-1` -> dgx-042, `node042 mlx5_0` -> node042), unless that word is no host name: the
factory description (`MT4129 ConnectX-7 Mellanox Technologies`), a bare device (`mlx5_0`) or nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

from moeplace.errors import InputError
from moeplace.fileio import file_digest
from moeplace.topologies.imports import line_error

_MAP_LINE = re.compile(r'^(?:0x)?([0-9a-fA-F]{1,16})\s+(?:"([^"]*)"|(\S.*?))\s*(?:#.*)?$')
_NO_HOST = re.compile(r"^(MT\d+|Mellanox|ConnectX\S*|mlx\d+_\d+|HCA-?\d*|localhost|\(null\)|BlueField\S*|NVIDIA|"
                      r"Nvidia|Quantum)$", re.IGNORECASE)
_AGGREGATION = re.compile(r"aggregation node", re.IGNORECASE)
# ports of a switch model without its internal (SHARP) port: a hint where a -p file never lists the top ports
MODEL_PORTS = {"QM87": 40, "QM8790": 40, "QM97": 64, "QM9790": 64, "SB77": 36, "SB78": 36, "CS75": 36, "SX60": 36,
               "CS85": 40, "CS76": 36, "Q3400": 144, "Q3200": 72}


def parse_node_name_map(text: str, source: str) -> dict[int, str]:
    """{GUID: name} from a node name map file (format above); a GUID named twice is an error."""
    out: dict[int, tuple[str, int]] = {}
    for lineno, raw in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        m = _MAP_LINE.match(s)
        if m is None:
            raise line_error(source, lineno, raw, 'expected a GUID and a quoted name, such as 0x1c34da0300786a00 '
                             '"dgx-001 mlx5_0"')
        guid = int(m.group(1), 16)
        name = (m.group(2) if m.group(2) is not None else m.group(3)).strip()
        if not name:
            raise line_error(source, lineno, raw, f"GUID 0x{guid:016x} has an empty name")
        if guid in out:
            raise line_error(source, lineno, raw, f"GUID 0x{guid:016x} is named twice (first at line "
                             f"{out[guid][1]})")
        out[guid] = (name, lineno)
    return {g: n for g, (n, _) in out.items()}


def read_node_name_map(path: str | None) -> tuple[dict[int, str], dict]:
    """({GUID: name}, its record {file, path, sha256} for the plan) of a map file; ({}, {}) for None."""
    if not path:
        return {}, {}
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found", source=path, field="--node-name-map")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", source=path, field="--node-name-map") from None
    return parse_node_name_map(text, path), {"file": p.name, "path": path, "sha256": file_digest(p)}


def host_of(name: str) -> str | None:
    """The host a CA's name (description or map entry) gives, or None when it names none."""
    words = name.split()
    if not words or _NO_HOST.match(words[0]) or name.startswith("MF0;"):
        return None
    return words[0]


def is_aggregation_node(desc: str) -> bool:
    return bool(_AGGREGATION.search(desc))


def switch_name(desc: str) -> str:
    """`MF0;leaf01:MQM8700/U1` -> leaf01; any other description as it is."""
    m = re.match(r"^MF0;([^:]+):", desc)
    return (m.group(1) if m else desc).strip()


def model_ports(desc: str) -> int:
    """External ports of the switch model a description names (`MF0;x:MQM8700/U1` -> 40), else 0."""
    m = re.search(r":M?([A-Z]{1,2}\d{2,4})", desc)
    if not m:
        return 0
    model = m.group(1)
    for prefix, ports in sorted(MODEL_PORTS.items(), key=lambda kv: -len(kv[0])):
        if model.startswith(prefix):
            return ports
    return 0


_LEAF_HINT = re.compile(r"(^|[^a-z])(leaf|lf|tor|l1)(?![a-z])", re.IGNORECASE)
_SPINE_HINT = re.compile(r"(^|[^a-z])(spine|sp|l2)(?![a-z])", re.IGNORECASE)
_CORE_HINT = re.compile(r"(^|[^a-z])(super-?spine|ss|core|l3)(?![a-z])", re.IGNORECASE)


def level_hint(name: str) -> int:
    """The level a switch's name suggests (1 leaf, 2 spine, 3 core or super-spine), 0 when it says nothing."""
    for level, pattern in ((3, _CORE_HINT), (1, _LEAF_HINT), (2, _SPINE_HINT)):
        if pattern.search(name):
            return level
    return 0
