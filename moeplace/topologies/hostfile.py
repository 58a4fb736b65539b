"""A plain host list: the cluster's nodes in rack order, one entry per line, no switches.

Each line holds a host or a Slurm hostlist expression (`gpu[001-032]`), optionally with a slot count in
the launchers' syntax (`gpu001 slots=8` for DeepSpeed and Open MPI, `gpu001:8` for MPICH; `max_slots=` is
ignored); `#` starts a comment. `scontrol show hostnames` output is a host list. A slot count, where
given, must equal the cluster's GPUs per node. The fabric is the generator's (`--cluster`'s topology
parameters) filled with these hosts in this order, as Slurm fills switches in node order.
"""

from __future__ import annotations

import re

from moeplace.errors import InputError
from moeplace.topologies.hostlist import expand_hostlist
from moeplace.topologies.imports import line_error

_SLOTS = re.compile(r"^(slots|max_slots|max-slots)=(\d+)$")


def parse_host_list(text: str, source: str, *, gpus_per_node: int) -> list[str]:
    hosts: list[str] = []
    first: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        body = raw.split("#", 1)[0].strip()
        if not body:
            continue
        tokens = body.split()
        expr, slots = tokens[0], None
        m = re.match(r"^(.*):(\d+)$", expr)
        if m:
            expr, slots = m.group(1), int(m.group(2))
        for tok in tokens[1:]:
            s = _SLOTS.match(tok)
            if not s:
                raise line_error(source, lineno, raw, f"unexpected {tok!r} (a host list line is a host or hostlist, "
                                 f"optionally with slots=N)")
            if s.group(1) == "slots":
                slots = int(s.group(2))
        if slots is not None and slots != gpus_per_node:
            raise line_error(source, lineno, raw, f"{slots} slots, but the cluster has {gpus_per_node} GPUs per node")
        try:
            names = expand_hostlist(expr)
        except InputError as exc:
            raise line_error(source, lineno, raw, f"malformed hostlist ({str(exc).removeprefix('hosts: ')})") from None
        for h in names:
            if h in first:
                raise line_error(source, lineno, raw, f"host {h!r} is listed twice (first at line {first[h]})")
            first[h] = lineno
            hosts.append(h)
    if not hosts:
        raise InputError("no host in the file", source=source)
    return hosts
