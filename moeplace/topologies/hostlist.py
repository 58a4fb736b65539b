"""Slurm hostlist expressions: `gpu[001-032,040]`, `a[1-2]b[3-4]`, `n1,n2`.

Semantics follow Slurm's hostlist.c: comma-separated at bracket depth 0; inside brackets, comma-separated
numbers and ranges `lo-hi` keep the zero padding of `lo`; several bracket groups in one name form a
cartesian product (left-most varies slowest); duplicates are kept in order.
"""

from __future__ import annotations

import re

from moeplace.errors import InputError

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
MAX_HOSTS = 1_000_000


def _split_top(expr: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in expr:
        if ch == "[":
            depth += 1
            if depth > 1:
                raise InputError(f"nested '[' in hostlist {expr!r}", field="hosts")
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise InputError(f"unbalanced ']' in hostlist {expr!r}", field="hosts")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise InputError(f"unclosed '[' in hostlist {expr!r}", field="hosts")
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _expand_ranges(body: str, expr: str) -> list[str]:
    out: list[str] = []
    for piece in body.split(","):
        m = _RANGE.match(piece.strip())
        if not m:
            raise InputError(f"bad range {piece!r} in hostlist {expr!r}", field="hosts")
        lo_s, hi_s = m.group(1), m.group(2)
        if hi_s is None:
            out.append(lo_s)
            continue
        lo, hi = int(lo_s), int(hi_s)
        if hi < lo:
            raise InputError(f"range {piece!r} runs backwards in hostlist {expr!r}", field="hosts")
        if hi - lo + 1 > MAX_HOSTS:
            raise InputError(f"range {piece!r} is too large in hostlist {expr!r}", field="hosts")
        width = len(lo_s)
        out.extend(f"{v:0{width}d}" for v in range(lo, hi + 1))
    return out


def _expand_one(name: str, expr: str) -> list[str]:
    if not name:
        raise InputError(f"empty host name in hostlist {expr!r}", field="hosts")
    results = [""]
    pos = 0
    for m in re.finditer(r"\[([^\]]*)\]", name):
        prefix = name[pos:m.start()]
        if "]" in prefix or "[" in prefix:
            raise InputError(f"malformed brackets in hostlist {expr!r}", field="hosts")
        values = _expand_ranges(m.group(1), expr)
        results = [r + prefix + v for r in results for v in values]
        pos = m.end()
    tail = name[pos:]
    if "[" in tail or "]" in tail:
        raise InputError(f"malformed brackets in hostlist {expr!r}", field="hosts")
    return [r + tail for r in results]


def expand_hostlist(expr: str) -> list[str]:
    """All host names of a Slurm hostlist expression, in order."""
    if not expr or not expr.strip():
        raise InputError("empty hostlist", field="hosts")
    out: list[str] = []
    for part in _split_top(expr.strip()):
        out.extend(_expand_one(part, expr))
        if len(out) > MAX_HOSTS:
            raise InputError(f"hostlist {expr!r} names more than {MAX_HOSTS} hosts", field="hosts")
    return out


def compress_hostlist(hosts: list[str]) -> str:
    """A compact expression for `hosts` that expands back to the same list, in order.

    Runs of one prefix whose numbers print back unchanged at the width of the run's first number become
    bracket ranges: node099, node100 -> node[099-100] (Slurm pads every number to the width of `lo`).
    """
    groups: list[tuple[str, int, list[int]]] = []
    for h in hosts:
        m = re.match(r"^(.*?)(\d+)$", h)
        if not m or "[" in h or "]" in h or "," in h:
            groups.append((h, -1, []))
            continue
        prefix, digits = m.group(1), m.group(2)
        value = int(digits)
        if groups and groups[-1][0] == prefix and groups[-1][1] > 0 and f"{value:0{groups[-1][1]}d}" == digits:
            groups[-1][2].append(value)
        else:
            groups.append((prefix, len(digits), [value]))
    parts = []
    for prefix, width, values in groups:
        if width == -1:
            parts.append(prefix)
            continue
        if len(values) == 1:
            parts.append(f"{prefix}{values[0]:0{width}d}")
            continue
        ranges, start, prev = [], values[0], values[0]
        for v in values[1:] + [None]:
            if v is not None and v == prev + 1:
                prev = v
                continue
            ranges.append(f"{start:0{width}d}" if start == prev else f"{start:0{width}d}-{prev:0{width}d}")
            if v is not None:
                start = prev = v
        parts.append(f"{prefix}[{','.join(ranges)}]")
    return ",".join(parts)
