"""`Wiring`: switches, cables and host NICs collected by name, then turned into a `Network` for chosen hosts.

Generators and importers both fill a `Wiring`; `build(hosts, ...)` keeps the named hosts in the given order
(a job may use a subset of a cluster's hosts), aggregates parallel cables into links, and derives switch
levels and roles from the cabling when they were not given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from moeplace.errors import InputError
from moeplace.topologies.network import UNREACHABLE, Network, bfs_hops

ROLES = {1: "leaf", 2: "spine", 3: "core"}


@dataclass
class Wiring:
    switches: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    levels: list[int] = field(default_factory=list)
    cables: dict[tuple[int, int], list[float]] = field(default_factory=dict)   # (s1 < s2) -> [count, gbps, lat]
    nics: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)  # host -> [(switch, gbps, lat)]
    index: dict[str, int] = field(default_factory=dict)
    loopbacks: int = 0        # cables from a switch to itself, counted and left out

    def add_switch(self, name: str, *, role: str = "", ports: int = 0, level: int = 0) -> int:
        assert name not in self.index, f"switch {name!r} added twice"
        self.index[name] = len(self.switches)
        self.switches.append(name)
        self.roles.append(role)
        self.ports.append(ports)
        self.levels.append(level)
        return self.index[name]

    def connect(self, s1: int, s2: int, *, gbps: float, latency_us: float, count: int = 1) -> None:
        """`count` cables of `gbps` each between two switches; a loopback (s1 == s2) is only counted."""
        if s1 == s2:
            self.loopbacks += count
            return
        key = (min(s1, s2), max(s1, s2))
        c = self.cables.setdefault(key, [0, 0.0, latency_us])
        c[0] += count
        c[1] += gbps * count

    def attach(self, host: str, switch: int, *, gbps: float, latency_us: float) -> None:
        """The host's next NIC plugs into `switch`."""
        self.nics.setdefault(host, []).append((switch, gbps, latency_us))

    @property
    def host_names(self) -> list[str]:
        return list(self.nics)

    def build(self, hosts: list[str] | tuple[str, ...], gpus_per_node: int, *, switch_latency_us: float,
              source: str | None = None) -> Network:
        N = len(hosts)
        counts = {len(self.nics[h]) for h in hosts}
        if len(counts) != 1:
            few = min(hosts, key=lambda h: len(self.nics[h]))
            many = max(hosts, key=lambda h: len(self.nics[h]))
            raise InputError(f"hosts have different NIC counts: {many} has {len(self.nics[many])}, {few} has "
                             f"{len(self.nics[few])} (leave a host out with --hosts)", source=source)
        R = counts.pop()
        clash = set(hosts) & set(self.index)
        if clash:
            raise InputError(f"{sorted(clash)[0]!r} names both a host and a switch", source=source)
        a, b, cnt, gbps, lat = [], [], [], [], []
        nic_link = np.zeros((N, R), dtype=np.int32)
        for n, host in enumerate(hosts):
            per_switch: dict[int, int] = {}
            for r, (s, g, lt) in enumerate(self.nics[host]):
                if s not in per_switch:
                    per_switch[s] = len(a)
                    a.append(n), b.append(N + s), cnt.append(0), gbps.append(0.0), lat.append(lt)
                link = per_switch[s]
                cnt[link] += 1
                gbps[link] += g
                nic_link[n, r] = link
        for (s1, s2), (c, g, lt) in sorted(self.cables.items()):
            a.append(N + s1), b.append(N + s2), cnt.append(int(c)), gbps.append(g), lat.append(lt)
        levels = np.array(self.levels, dtype=np.int8)
        roles = list(self.roles)
        if not all(roles) or (np.any(levels == 0) and "unconnected" not in roles):
            levels, roles = self._derive_levels(hosts, N, a, b)
        return Network(hosts=tuple(hosts), gpus_per_node=gpus_per_node, nics_per_node=R,
                       switches=tuple(self.switches), switch_level_S=levels, switch_role_S=tuple(roles),
                       switch_ports_S=np.array(self.ports, dtype=np.int32), link_a_L=np.array(a, dtype=np.int32),
                       link_b_L=np.array(b, dtype=np.int32), link_count_L=np.array(cnt, dtype=np.int32),
                       link_gbps_L=np.array(gbps, dtype=np.float64),
                       link_latency_us_L=np.array(lat, dtype=np.float64), nic_link_NR=nic_link,
                       switch_latency_us=switch_latency_us)

    def _derive_levels(self, hosts, N, a, b) -> tuple[np.ndarray, list[str]]:
        """Leaves are switches with NICs of any host of the wiring; others sit 1 + hops above the nearest."""
        S = len(self.switches)
        leaf = np.zeros(S, dtype=bool)
        for nics in self.nics.values():
            for s, _, _ in nics:
                leaf[s] = True
        adj = np.zeros((S, S), dtype=bool)
        for s1, s2 in self.cables:
            adj[s1, s2] = adj[s2, s1] = True
        dist = bfs_hops(adj)
        if leaf.any():
            nearest = dist[:, leaf].min(axis=1).astype(np.int64)
        else:
            nearest = np.full(S, UNREACHABLE, dtype=np.int64)
        level = np.where(nearest >= UNREACHABLE, 0, nearest + 1).astype(np.int8)
        roles = [ROLES.get(int(x), f"level{int(x)}") if x else "unconnected" for x in level]
        return level, roles
