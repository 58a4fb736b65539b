"""Slurm hostlist expressions: `gpu[001-032,040]`, `a[1-2]b[3-4]`, `n1,n2`.

Semantics follow Slurm's hostlist.c: comma-separated at bracket depth 0; inside brackets, comma-separated
numbers and ranges `lo-hi` keep the zero padding of `lo`; several bracket groups in one name form a
cartesian product (left-most varies slowest); duplicates are kept in order.

Limits, checked before anything is expanded: at most `MAX_HOSTS` names in all (the product of a name's
bracket groups counts, not each range alone), numbers of ASCII digits only (at most 18), and every name a
host name (`host_problem`: ASCII letters, digits, '.', '_', '-'; 253 characters, 63 per label).
"""

from __future__ import annotations

import re

from moeplace.errors import InputError

_RANGE = re.compile(r"([0-9]{1,18})(?:-([0-9]{1,18}))?")
MAX_HOSTS = 1_000_000
HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_HOST = 253
MAX_LABEL = 63


def host_problem(host: object) -> str | None:
    """Why `host` is not a host name a launch script can carry; None when it is one.

    Full match (`re.fullmatch`: a `$` anchor would also accept a final newline), RFC 1123 lengths.
    """
    if not isinstance(host, str):
        return f"host name {host!r} is not a string"
    if len(host) > MAX_HOST:
        return f"host name {host[:40]!r}... is {len(host)} characters, at most {MAX_HOST}"
    if not HOST_RE.fullmatch(host):
        return f"host name {host!r} is not a valid host name (ASCII letters, digits, '.', '_', '-')"
    long = next((lab for lab in host.split(".") if len(lab) > MAX_LABEL), None)
    if long is not None:
        return f"host name {host[:40]!r} has a {len(long)}-character label, at most {MAX_LABEL}"
    return None


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
        m = _RANGE.fullmatch(piece.strip())
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


def _count(body: str) -> int:
    """How many names one bracket group expands to, without expanding it (0 when malformed)."""
    total = 0
    for piece in body.split(","):
        m = _RANGE.fullmatch(piece.strip())
        if not m:
            return 0
        total += 1 if m.group(2) is None else max(int(m.group(2)) - int(m.group(1)) + 1, 0)
    return total


def _expand_one(name: str, expr: str, budget: int = MAX_HOSTS) -> list[str]:
    if not name:
        raise InputError(f"empty host name in hostlist {expr!r}", field="hosts")
    size = 1
    for m in re.finditer(r"\[([^\]]*)\]", name):
        size *= _count(m.group(1)) or 1
        if size > budget:
            raise InputError(f"hostlist {expr!r} names more than {MAX_HOSTS} hosts", field="hosts")
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
    if not expr.isprintable():
        raise InputError(f"hostlist {expr[:80]!r} has a control character (newline, tab, ...)", field="hosts")
    out: list[str] = []
    for part in _split_top(expr.strip()):
        out.extend(_expand_one(part, expr, MAX_HOSTS - len(out)))
        if len(out) > MAX_HOSTS:
            raise InputError(f"hostlist {expr!r} names more than {MAX_HOSTS} hosts", field="hosts")
    bad = next((why for why in map(host_problem, out) if why), None)
    if bad is not None:
        raise InputError(f"{bad} in hostlist {expr[:80]!r}", field="hosts")
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
