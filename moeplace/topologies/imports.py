"""What an importer returns, and the fabric of the hosts a cluster uses out of it.

An importer reads a whole cluster's description (a Slurm `topology.conf`, `ibnetdiscover` output, a host
list); a job uses some of its hosts. `Imported.fabric(hosts, ...)` keeps those hosts, in the given order,
with every switch and link of the file (a switch above unused hosts may still carry traffic).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from moeplace.errors import InputError
from moeplace.topologies.base import Fabric, fabric_from_network
from moeplace.topologies.hostlist import compress_hostlist, host_problem
from moeplace.topologies.wiring import Wiring

DEFAULT_SWITCH_LATENCY_US = 0.13
DEFAULT_LINK_LATENCY_US = 0.025


@dataclass
class Imported:
    kind: str                 # "topology.conf", "ibnetdiscover", "hostlist"
    source: str               # the file, for messages
    wiring: Wiring
    hosts: list[str]          # every host of the file, in the file's order
    summary: str              # what the file holds, one line
    params: dict = field(default_factory=dict)
    switch_latency_us: float = DEFAULT_SWITCH_LATENCY_US
    labels: tuple[str, ...] | None = None   # tier labels, when the file's kind fixes them

    def fabric(self, hosts: list[str] | tuple[str, ...], gpus_per_node: int, *, params: dict | None = None) -> Fabric:
        known = set(self.hosts)
        missing = [h for h in hosts if h not in known]
        if missing:
            raise InputError(f"host {missing[0]!r} is not in the file ({len(self.hosts)} hosts: "
                             f"{shorten(compress_hostlist(self.hosts))})", source=self.source)
        seen: set[str] = set()
        for h in hosts:
            if h in seen:
                raise InputError(f"host {h!r} is chosen twice", source=self.source)
            bad = host_problem(h)  # a file's host reaches plan.json and the launch scripts: refused here, first
            if bad:
                raise InputError(bad, source=self.source)
            seen.add(h)
        net = self.wiring.build(list(hosts), gpus_per_node, switch_latency_us=self.switch_latency_us,
                                source=self.source)
        used = "" if len(hosts) == len(self.hosts) else f" (using {len(hosts)} of its {len(self.hosts)} hosts)"
        return fabric_from_network(net, kind=self.kind, description=f"{self.summary}{used}",
                                   params={**self.params, **(params or {})}, source=self.source, labels=self.labels)


def natural_key(name: str) -> tuple:
    """Sort key that puts gpu2 before gpu10 and mlx5_2 before mlx5_10."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def line_error(source: str, lineno: int, text: str, message: str) -> InputError:
    """The one-line error of a bad input line: file, line number, what is wrong, and the line's text."""
    return InputError(f"{message}: {shorten(text.strip(), 100)!r}", source=source, field=f"line {lineno}")
