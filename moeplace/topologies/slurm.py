"""Slurm `topology.conf`: read the tree and block plugins' formats; write the tree format for any fabric.

Read (see docs/topologies.md for the exact rules):
  topology/tree   `SwitchName=<name> Nodes=<hostlist>` (a leaf) or `SwitchName=<name> Switches=<hostlist>`,
                  optional `LinkSpeed=` (ignored, as Slurm does). Keys are case-insensitive, `#` starts a
                  comment, a trailing backslash continues a line. A node sits under exactly one leaf; a
                  switch may be listed under several parents; switch references must be defined and acyclic.
  topology/block  `BlockName=<name> Nodes=<hostlist>` and one optional `BlockSizes=<n>,<n>,...`: blocks are
                  leaves; consecutive blocks form the higher-level block of BlockSizes[1] nodes (default:
                  pairs, as Slurm pairs contiguous blocks), which is the pod tier.
The file gives no link capacities: every link is assumed non-blocking (a switch's uplinks carry as much as
all NICs below it), so link loads on an imported tree show NIC and leaf limits only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from moeplace.errors import InputError
from moeplace.topologies.base import Fabric
from moeplace.topologies.hostlist import compress_hostlist, expand_hostlist
from moeplace.topologies.imports import DEFAULT_LINK_LATENCY_US, Imported, line_error
from moeplace.topologies.wiring import Wiring
from moeplace.version import __version__


@dataclass
class _Entry:
    name: str
    lineno: int
    text: str
    keys: dict[str, str] = field(default_factory=dict)


def logical_lines(text: str) -> list[tuple[int, str, str]]:
    """(first line number, content without comments, raw text) of every non-empty logical line."""
    out, buf, raw, start = [], "", "", 0
    for i, line in enumerate(text.splitlines(), 1):
        body = _strip_comment(line).rstrip()
        if not buf:
            start, raw = i, line
        else:
            raw += " " + line.strip()
        if body.endswith("\\"):
            buf += body[:-1] + " "
            continue
        buf += body
        if buf.strip():
            out.append((start, buf.strip(), raw))
        buf = ""
    if buf.strip():
        out.append((start, buf.strip(), raw))
    return out


def _strip_comment(line: str) -> str:
    out, i = [], 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line) and line[i + 1] == "#":
            out.append("#")
            i += 2
            continue
        if line[i] == "#":
            break
        out.append(line[i])
        i += 1
    return "".join(out)


def _entries(text: str, source: str) -> tuple[str, list[_Entry], _Entry | None]:
    plugin, entries, sizes = None, [], None
    for lineno, body, raw in logical_lines(text):
        keys: dict[str, str] = {}
        first = None
        for token in body.split():
            key, sep, value = token.partition("=")
            if not sep or not key or not value:
                raise line_error(source, lineno, raw, f"expected Key=Value, got {token!r}")
            k = key.lower()
            if k in keys:
                raise line_error(source, lineno, raw, f"{key} is given twice")
            keys[k] = value.strip('"')
            first = first or k
        kind = {"switchname": "tree", "blockname": "block", "blocksizes": "block"}.get(first)
        if first == "ringname":
            raise line_error(source, lineno, raw, "the topology/ring plugin is not supported")
        if kind is None:
            raise line_error(source, lineno, raw, "unknown line (expected SwitchName=, BlockName= or BlockSizes=)")
        if plugin and plugin != kind:
            raise line_error(source, lineno, raw, f"topology/{kind} line in a topology/{plugin} file")
        plugin = kind
        allowed = {"switchname": {"switchname", "switches", "nodes", "linkspeed"},
                   "blockname": {"blockname", "nodes"}, "blocksizes": {"blocksizes"}}[first]
        extra = sorted(set(keys) - allowed)
        if extra:
            raise line_error(source, lineno, raw, f"unknown key {extra[0]!r} on a {first} line")
        entry = _Entry(keys[first], lineno, raw, keys)
        if first == "blocksizes":
            if sizes is not None:
                raise line_error(source, lineno, raw, f"BlockSizes is given twice (first at line {sizes.lineno})")
            sizes = entry
        else:
            entries.append(entry)
    if plugin is None:
        raise InputError("no SwitchName= or BlockName= line", source=source)
    return plugin, entries, sizes


def _expand(e: _Entry, key: str, source: str) -> list[str]:
    try:
        names = expand_hostlist(e.keys[key])
    except InputError as exc:
        raise line_error(source, e.lineno, e.text, f"malformed hostlist {key.capitalize()}={e.keys[key]} "
                         f"({str(exc).removeprefix('hosts: ')})") from None
    seen: set[str] = set()
    dup = next((x for x in names if x in seen or seen.add(x)), None)  # linear: 100,000 names in well under 1 s
    if dup is not None:
        raise line_error(source, e.lineno, e.text, f"{dup!r} is listed twice")
    return names


def parse_topology_conf(text: str, source: str, *, nics_per_node: int, nic_gbps: float) -> Imported:
    plugin, entries, sizes = _entries(text, source)
    defined: dict[str, _Entry] = {}
    for e in entries:
        if "[" in e.name or "," in e.name:
            raise line_error(source, e.lineno, e.text, f"one name per line, got {e.name!r}")
        if e.name in defined:
            raise line_error(source, e.lineno, e.text, f"{e.name!r} is defined twice (first at line "
                             f"{defined[e.name].lineno})")
        defined[e.name] = e
    if plugin == "tree":
        w, hosts, summary = _tree(entries, defined, source, nics_per_node, nic_gbps)
    else:
        w, hosts, summary = _blocks(entries, sizes, source, nics_per_node, nic_gbps)
    return Imported(kind="topology.conf", source=source, wiring=w, hosts=hosts, summary=summary)


def _leaf_hosts(entries, source) -> tuple[dict[str, list[str]], list[str]]:
    owner: dict[str, _Entry] = {}
    leaves, hosts = {}, []
    for e in entries:
        if "nodes" not in e.keys:
            continue
        leaves[e.name] = _expand(e, "nodes", source)
        for h in leaves[e.name]:
            if h in owner:
                kind = "blocks" if "blockname" in e.keys else "leaf switches"
                raise line_error(source, e.lineno, e.text, f"node {h!r} is under two {kind}: {owner[h].name!r} "
                                 f"(line {owner[h].lineno}) and {e.name!r}")
            owner[h] = e
            hosts.append(h)
    return leaves, hosts


def _tree(entries, defined, source, R, gbps):
    children: dict[str, list[str]] = {}
    for e in entries:
        has_nodes, has_switches = "nodes" in e.keys, "switches" in e.keys
        if has_nodes == has_switches:
            raise line_error(source, e.lineno, e.text, "a switch needs either Nodes= (a leaf) or Switches=, "
                             + ("not both" if has_nodes else "and has neither"))
        if has_switches:
            children[e.name] = _expand(e, "switches", source)
            bad = next((c for c in children[e.name] if c not in defined), None)
            if bad is not None:
                raise line_error(source, e.lineno, e.text, f"undefined switch {bad!r} in Switches={e.keys['switches']}")
    _check_acyclic(children, defined, source)
    leaves, hosts = _leaf_hosts(entries, source)
    below: dict[str, set[str]] = {}

    def hosts_below(s: str) -> set[str]:
        if s not in below:
            below[s] = set(leaves.get(s, ())).union(*(hosts_below(c) for c in children.get(s, ())))
        return below[s]

    parents: dict[str, list[str]] = {}
    for p, cs in children.items():
        for c in cs:
            parents.setdefault(c, []).append(p)
    w = Wiring()
    index = {e.name: w.add_switch(e.name) for e in entries}
    for leaf, hs in leaves.items():
        for h in hs:
            for _ in range(R):
                w.attach(h, index[leaf], gbps=gbps, latency_us=DEFAULT_LINK_LATENCY_US)
    for c, ps in parents.items():
        cap = max(1, len(hosts_below(c))) * R * gbps / len(ps)
        for p in ps:
            w.connect(index[c], index[p], gbps=cap, latency_us=DEFAULT_LINK_LATENCY_US)
    roots = [e.name for e in entries if e.name not in parents]
    summary = (f"Slurm topology.conf (tree): {len(hosts)} hosts under {len(leaves)} leaf switches, "
               f"{len(entries)} switches, {len(roots)} root{'s' if len(roots) > 1 else ''}")
    return w, hosts, summary


def _check_acyclic(children, defined, source) -> None:
    state: dict[str, int] = {}
    for start in children:
        stack = [(start, iter(children.get(start, ())))]
        path = [start]
        state[start] = state.get(start, 0) or 1
        if state[start] == 2:
            continue
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
                continue
            if state.get(nxt) == 1:
                cycle = " -> ".join(path[path.index(nxt):] + [nxt])
                e = defined[node]
                raise line_error(source, e.lineno, e.text, f"cycle in the switch tree: {cycle}")
            if not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(children.get(nxt, ()))))
                path.append(nxt)


def _blocks(entries, sizes, source, R, gbps):
    leaves, hosts = _leaf_hosts(entries, source)
    counts = [len(leaves[e.name]) for e in entries]
    if sizes is not None:
        try:
            bs = [int(x) for x in sizes.keys["blocksizes"].split(",")]
        except ValueError:
            raise line_error(source, sizes.lineno, sizes.text, "BlockSizes must be integers") from None
        for a, b in zip(bs, bs[1:]):
            if b <= a or b % a or (b // a) & (b // a - 1):
                raise line_error(source, sizes.lineno, sizes.text, f"{b} is not a power-of-two multiple of {a}")
        small = next((e for e, n in zip(entries, counts) if n < bs[0]), None)
        if small is not None:
            raise line_error(source, small.lineno, small.text, f"block {small.name!r} has {len(leaves[small.name])} "
                             f"nodes, fewer than the base block size {bs[0]}")
        per_pod = bs[1] // bs[0] if len(bs) > 1 else 1
    else:
        per_pod = 2
    w = Wiring()
    names = {e.name for e in entries} | set(hosts)
    top = _unique("top", names)
    root = w.add_switch(top)
    for i in range(0, len(entries), per_pod):
        group = entries[i:i + per_pod]
        parent = root
        if per_pod > 1:
            parent = w.add_switch(_unique(f"blockgroup{i // per_pod + 1}", names))
        for e in group:
            s = w.add_switch(e.name)
            for h in leaves[e.name]:
                for _ in range(R):
                    w.attach(h, s, gbps=gbps, latency_us=DEFAULT_LINK_LATENCY_US)
            w.connect(s, parent, gbps=len(leaves[e.name]) * R * gbps, latency_us=DEFAULT_LINK_LATENCY_US)
        if parent != root:
            n = sum(len(leaves[e.name]) for e in group)
            w.connect(parent, root, gbps=n * R * gbps, latency_us=DEFAULT_LINK_LATENCY_US)
    summary = (f"Slurm topology.conf (block): {len(hosts)} hosts in {len(entries)} blocks, "
               f"{per_pod} block{'s' if per_pod > 1 else ''} per higher-level block")
    return w, hosts, summary


def _unique(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def topology_conf(fabric: Fabric) -> str:
    """The fabric as a topology/tree file: one logical switch per leaf unit, per pod (when several), and a
    root; importing it gives the same tier for every GPU pair."""
    hosts = list(fabric.hosts)
    net = fabric.network
    taken = set(hosts)
    units = int(fabric.node_leaf_N.max()) + 1
    pods = int(fabric.node_pod_N.max()) + 1
    unit_nodes = [[h for h, u in zip(hosts, fabric.node_leaf_N) if u == i] for i in range(units)]
    lines = [f"# Slurm topology.conf (topology/tree) written by moeplace {__version__}",
             f"# fabric: {fabric.description}",
             "# Logical switches: one per leaf unit, one per pod or group, and a root; tiers are preserved."]
    unit_names = []
    for i, nodes in enumerate(unit_nodes):
        leaves = sorted({net.switches[s] for s in net.nic_switch_NR[[hosts.index(h) for h in nodes]].ravel()}) \
            if net is not None else []
        name = _unique(leaves[0] if len(leaves) == 1 else f"su{i + 1:02d}", taken)
        unit_names.append(name)
        if len(leaves) > 1:
            lines.append(f"# {name}: rail leaves {compress_hostlist(leaves)}")
        lines.append(f"SwitchName={name} Nodes={compress_hostlist(nodes)}")
    word = "group" if fabric.tier_labels[3] == "group" else "pod"
    parents = unit_names
    if pods > 1:
        parents = []
        for p in range(pods):
            members = [unit_names[u] for u in range(units) if fabric.node_pod_N[fabric.node_leaf_N == u][0] == p]
            parents.append(_unique(f"{word}{p + 1:02d}", taken))
            lines.append(f"SwitchName={parents[-1]} Switches={compress_hostlist(members)}")
    root = _unique({"pod": "core", "group": "global"}[word] if pods > 1 else "top", taken)
    lines.append(f"SwitchName={root} Switches={compress_hostlist(parents)}")
    return "\n".join(lines) + "\n"
