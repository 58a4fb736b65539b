"""A picture of a fabric (PNG, SVG or PDF by suffix) with matplotlib, readable at a few hundred nodes.

Small fabrics (up to `FULL_LIMIT` hosts and switches and `FULL_LINKS` links) are drawn switch by switch. Larger ones are drawn
grouped, one box per group and one line per group pair (width grows with capacity, labelled in Tb/s):
hosts and leaves per leaf unit (per pod when there are more than `MAX_COLUMNS` units), spines per pod or
Dragonfly+ group, and one box per level above; Dragonfly+ global links are arcs between group boxes.
"""

from __future__ import annotations

import io
import textwrap
from collections import defaultdict
from pathlib import Path

import numpy as np

from moeplace.errors import InputError
from moeplace.topologies.base import Fabric
from moeplace.topologies.hostlist import compress_hostlist
from moeplace.topologies.imports import shorten

FULL_LIMIT = 64
FULL_LINKS = 120
MAX_COLUMNS = 24
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def _groups(fabric: Fabric, detail: str):
    """(group of every vertex, {group: (row, x-order key, label)})."""
    net = fabric.network
    N, S = net.num_hosts, net.num_switches
    unit, pod, switch_pod = net.positions
    level = net.switch_level_S
    full = detail == "full" or (detail == "auto" and N + S <= FULL_LIMIT and net.num_links <= FULL_LINKS)
    by_pod = not full and int(unit.max()) + 1 > MAX_COLUMNS
    leaf_unit = np.full(S, -1)
    leaf_unit[net.nic_switch_NR.ravel()] = np.repeat(unit, net.nics_per_node)
    group, info = [], {}
    for n in range(N):
        key = ("host", n) if full else ("hosts", int(pod[n]) if by_pod else int(unit[n]))
        group.append(key)
        info.setdefault(key, [0, (int(pod[n]), int(unit[n]), n), []])[2].append(net.hosts[n])
    for s in range(S):
        lv = int(level[s])
        if full:
            key = ("switch", s)
        elif lv == 1:
            u = int(leaf_unit[s])
            key = ("leaves", int(switch_pod[s]) if by_pod or u < 0 else u, u < 0)
        elif lv == 2:
            key = ("spines", int(switch_pod[s]))
        else:
            key = ("level", lv)
        group.append(key)
        first = int(np.flatnonzero(leaf_unit == leaf_unit[s])[0]) if lv == 1 and leaf_unit[s] >= 0 else s
        info.setdefault(key, [lv, (int(switch_pod[s]), int(leaf_unit[s]), first), []])[2].append(net.switches[s])
    word = "group" if fabric.tier_labels[3] == "group" else "pod"
    labels = {}
    for key, (row, order, members) in info.items():
        if key[0] in ("host", "switch"):
            text = members[0]
        elif key[0] == "hosts":
            text = f"{shorten(compress_hostlist(members), 28)}\n{len(members)} nodes"
        elif key[0] == "leaves":
            text = f"{len(members)} leaf switch{'es' if len(members) > 1 else ''}" + (" (no hosts)" if key[2] else "")
        elif key[0] == "spines":
            text = f"{word} {key[1] + 1}\n{len(members)} spines"
        else:
            text = f"{len(members)} {net.switch_role_S[net.switches.index(members[0])]} switches"
        labels[key] = (row, order, text)
    return group, labels


def _positions(labels) -> dict:
    rows = defaultdict(list)
    for key, (row, order, _) in labels.items():
        rows[row].append((order, key))
    width = max(len(v) for v in rows.values())
    pos = {}
    for row, items in rows.items():
        items.sort()
        for i, (_, key) in enumerate(items):
            pos[key] = ((i + 0.5) * width / len(items), row)
    return pos


def draw_fabric(fabric: Fabric, path: str | Path, *, detail: str = "auto") -> bytes:
    """Render `fabric` to the format of `path`'s suffix; returns the bytes (the caller writes them)."""
    try:
        import matplotlib
    except ImportError:
        raise InputError("drawing needs matplotlib: pip install 'moeplace[plot]'", source=str(path)) from None
    from matplotlib.figure import Figure
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MplPath

    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(f"unsupported picture type {Path(path).suffix!r} (use .png, .svg or .pdf)", source=str(path))
    if fabric.network is None:
        raise InputError("this fabric has no switches to draw", source=str(path))
    net = fabric.network
    group, labels = _groups(fabric, detail)
    pos = _positions(labels)
    edges: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0])
    for a, b, c, g in zip(net.link_a_L.tolist(), net.link_b_L.tolist(), net.link_count_L.tolist(),
                          net.link_gbps_L.tolist()):
        ka, kb = group[a], group[b]
        if ka != kb:
            e = edges[tuple(sorted((ka, kb), key=repr))]
            e[0] += c
            e[1] += g
    full = any(k[0] == "switch" for k in labels)
    width = max(x for x, _ in pos.values()) + 0.5
    top = max(y for _, y in pos.values())
    arcs = [abs(pos[a][0] - pos[b][0]) for a, b in edges if pos[a][1] == pos[b][1]]
    headroom = 0.9 + (0.35 + _arc_height(max(arcs)) if arcs else 0.0)
    fig = Figure(figsize=(min(20 if full else 40, max(8, 1.15 * width)), 2.0 + 1.6 * (top + headroom - 0.9)))
    ax = fig.add_subplot()
    cap_max = max((e[1] for e in edges.values()), default=1.0)
    arc_labels = []  # (x, y, cables, gbps): drawn after the arcs, on top of them
    for (ka, kb), (cables, gbps) in sorted(edges.items(), key=lambda kv: repr(kv[0])):
        (xa, ya), (xb, yb) = pos[ka], pos[kb]
        lw = (0.3 + 1.5 * (gbps / cap_max) ** 0.5) if full else (0.4 + 3.5 * (gbps / cap_max) ** 0.5)
        if ya == yb:
            h = _arc_height(xb - xa)
            bez = MplPath([(xa, ya + 0.2), ((xa + xb) / 2, ya + 0.2 + 2 * h), (xb, yb + 0.2)],
                          [MplPath.MOVETO, MplPath.CURVE3, MplPath.CURVE3])
            ax.add_patch(PathPatch(bez, fc="none", ec="#c0392b", lw=lw, alpha=0.6, zorder=1))
            arc_labels.append(((xa + xb) / 2, ya + 0.2 + h, cables, gbps))
            continue
        ax.plot([xa, xb], [ya, yb], color="#34495e", lw=lw, alpha=0.55, zorder=1)
        if not full:
            ax.text(xa + 0.55 * (xb - xa), ya + 0.55 * (yb - ya), _fmt_capacity(gbps), fontsize=6, ha="center",
                    va="center", color="#2c3e50", bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))
    _label_arcs(ax, arc_labels, width)
    colors = {0: "#d6eaf8", 1: "#d5f5e3", 2: "#fdebd0", 3: "#f5cba7"}
    for key, (row, _, text) in labels.items():
        x, y = pos[key]
        ax.text(x, y, text, ha="center", va="center", fontsize=6 if full else 7, zorder=3,
                bbox=dict(boxstyle="round,pad=0.3", fc=colors.get(row, "#e8daef"), ec="#7f8c8d", lw=0.6))
    names = {0: "hosts"} | {int(lv): net.switch_role_S[int(np.flatnonzero(net.switch_level_S == lv)[0])]
                            for lv in set(net.switch_level_S.tolist())}
    for row, name in names.items():
        ax.text(-0.4, row, name, ha="right", va="center", fontsize=8, style="italic", color="#566573")
    ax.set_xlim(-1.6, width + 0.2)
    ax.set_ylim(-0.7, top + headroom)
    ax.axis("off")
    legend = "line width ~ capacity; labels: capacity of all cables between two groups" if not full else \
        "one box per host and switch; line width ~ capacity"
    ax.set_title(f"{textwrap.fill(fabric.description, 140)}\n{legend}", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    meta = {"svg": {"Date": None}, "png": {"Software": None}, "pdf": {"CreationDate": None}}[fmt]
    with matplotlib.rc_context({"svg.hashsalt": "moeplace", "svg.fonttype": "none"}):
        fig.savefig(buf, format=fmt, dpi=150, metadata=meta)
    return buf.getvalue()


def _label_arcs(ax, labels: list[tuple[float, float, int, float]], width: float) -> None:
    """Dragonfly+ global links, with units. All group pairs alike (the generated fabrics): one label above
    the highest arc, clear of every crossing; otherwise one label per arc at its apex, on a white box drawn
    above all arcs."""
    if not labels:
        return
    if len({(c, round(g, 6)) for _, _, c, g in labels}) == 1:
        _, _, cables, gbps = labels[0]
        y = max(y for _, y, _, _ in labels) + 0.12
        ax.text(width / 2, y, f"global links: {cables} cables between every pair of groups "
                              f"({_fmt_capacity(gbps)} per pair)",
                fontsize=8, color="#c0392b", ha="center", va="bottom", zorder=4)
        return
    for x, y, cables, gbps in labels:
        ax.text(x, y, f"{cables} cables, {_fmt_capacity(gbps)}", fontsize=6, color="#c0392b", ha="center",
                va="center", zorder=4, bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="#c0392b", lw=0.4))


def _fmt_capacity(gbps: float) -> str:
    return f"{gbps / 1000:.1f} Tb/s" if gbps >= 1000 else f"{gbps:.0f} Gb/s"


def _arc_height(dx: float) -> float:
    return 0.25 + 0.1 * abs(dx)
