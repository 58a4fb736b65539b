"""Hosts, switches and links of a fabric: arrays for routing, and the networkx graph built from them.

Vertices are numbered hosts first (0..N-1, in the fabric's node order), then switches (N..N+S-1). A link
joins two vertices (`link_a_L` < `link_b_L`) and stands for `link_count_L` parallel cables, the ECMP members
of that hop, whose speeds add up to `link_gbps_L` per direction. A host link carries one or more of the
host's NICs: `nic_link_NR[n, r]` is the link of NIC r of node n.

Positions follow from the links alone, so that generated and imported fabrics get them the same way:
    level     1 for a switch with hosts (a leaf), else 1 + its hop distance to the nearest leaf
    unit      connected components of hosts and leaves joined by host links: one leaf, or the rail leaves
              of a scalable unit (NIC r of every node of the unit on the unit's rail-r leaf)
    pod       connected components of hosts and switches of level <= 2 joined by links between different
              levels: a fat-tree pod, a Dragonfly+ group (global links join spines of one level)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

UNREACHABLE = np.iinfo(np.int16).max


@dataclass(frozen=True, eq=False)
class Network:
    hosts: tuple[str, ...]
    gpus_per_node: int
    nics_per_node: int
    switches: tuple[str, ...]
    switch_level_S: np.ndarray      # int8 [S]
    switch_role_S: tuple[str, ...]  # "leaf", "spine", "core", ...
    switch_ports_S: np.ndarray      # int32 [S], radix (0: unknown)
    link_a_L: np.ndarray            # int32 [L] vertex
    link_b_L: np.ndarray            # int32 [L] vertex, > link_a_L
    link_count_L: np.ndarray        # int32 [L] parallel cables
    link_gbps_L: np.ndarray         # float64 [L] capacity per direction, Gb/s
    link_latency_us_L: np.ndarray   # float64 [L]
    nic_link_NR: np.ndarray         # int32 [N, R]
    switch_latency_us: float

    def __post_init__(self) -> None:
        N, S = self.num_hosts, self.num_switches
        assert self.nic_link_NR.shape == (N, self.nics_per_node)
        assert np.all(self.link_a_L < self.link_b_L) and np.all(self.link_b_L < N + S)
        assert np.all(self.link_a_L[self.nic_link_NR] == np.arange(N)[:, None]), "a NIC link starts at its host"
        for arr in (self.switch_level_S, self.switch_ports_S, self.link_a_L, self.link_b_L, self.link_count_L,
                    self.link_gbps_L, self.link_latency_us_L, self.nic_link_NR):
            arr.setflags(write=False)

    @property
    def num_hosts(self) -> int:
        return len(self.hosts)

    @property
    def num_switches(self) -> int:
        return len(self.switches)

    @property
    def num_links(self) -> int:
        return int(self.link_a_L.shape[0])

    @cached_property
    def nic_switch_NR(self) -> np.ndarray:
        """int [N, R]: the switch (index) each NIC plugs into."""
        return (self.link_b_L[self.nic_link_NR] - self.num_hosts).astype(np.int32)

    @cached_property
    def nic_gbps_NR(self) -> np.ndarray:
        """float [N, R]: one NIC's share of its host link."""
        link = self.nic_link_NR
        per_link = np.bincount(link.ravel(), minlength=self.num_links)
        return self.link_gbps_L[link] / per_link[link]

    @cached_property
    def is_switch_link_L(self) -> np.ndarray:
        return self.link_a_L >= self.num_hosts

    @cached_property
    def rails(self) -> bool:
        """True when some node's NICs plug into more than one leaf (a rail-optimized fabric)."""
        sw = self.nic_switch_NR
        return bool(np.any(sw != sw[:, :1]))

    @cached_property
    def has_global_links(self) -> bool:
        """True when links join switches of one level >= 2 (Dragonfly+ global links)."""
        m = self.is_switch_link_L
        la = self.switch_level_S[self.link_a_L[m] - self.num_hosts]
        lb = self.switch_level_S[self.link_b_L[m] - self.num_hosts]
        return bool(np.any((la == lb) & (la >= 2)))

    @cached_property
    def dist_SS(self) -> np.ndarray:
        """int16 [S, S]: switch-to-switch hops over switch links (UNREACHABLE where none)."""
        S, N = self.num_switches, self.num_hosts
        m = self.is_switch_link_L
        adj = np.zeros((S, S), dtype=bool)
        adj[self.link_a_L[m] - N, self.link_b_L[m] - N] = True
        return bfs_hops(adj | adj.T)

    @cached_property
    def node_hops_NN(self) -> np.ndarray:
        """int16 [N, N]: host-to-host hops on the best NIC pair (0 on the diagonal)."""
        dist = self.dist_SS.astype(np.int32)
        sw = self.nic_switch_NR
        to_node_SN = dist[:, sw].min(axis=2)                       # nearest NIC of node b from switch s
        hops = to_node_SN[sw, :].min(axis=1) + 2                   # [N, N]
        hops = np.minimum(hops, UNREACHABLE).astype(np.int16)
        np.fill_diagonal(hops, 0)
        return hops

    @cached_property
    def positions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(unit_N, pod_N, switch_pod_S): compact ids in node order; switch_pod_S is -1 above level 2, and pods
        without hosts (an unused Dragonfly+ group) number after those with hosts."""
        N, S = self.num_hosts, self.num_switches
        uf = _UnionFind(N + S)
        host = ~self.is_switch_link_L
        for a, b in zip(self.link_a_L[host].tolist(), self.link_b_L[host].tolist()):
            uf.union(a, b)
        unit = _compact([uf.find(n) for n in range(N)])
        level = self.switch_level_S
        sw = self.is_switch_link_L
        la, lb = level[self.link_a_L[sw] - N], level[self.link_b_L[sw] - N]
        keep = (la != lb) & (la <= 2) & (lb <= 2)
        for a, b in zip(self.link_a_L[sw][keep].tolist(), self.link_b_L[sw][keep].tolist()):
            uf.union(a, b)
        roots = [uf.find(v) for v in range(N + S)]
        pod = _compact(roots[:N])
        ids = {r: int(p) for r, p in zip(roots[:N], pod)}
        switch_pod = np.full(S, -1, dtype=np.int32)
        for s in range(S):
            if 1 <= level[s] <= 2:
                switch_pod[s] = ids.setdefault(roots[N + s], len(ids))
        return unit, pod, switch_pod

    def vertex_name(self, v: int) -> str:
        return self.hosts[v] if v < self.num_hosts else self.switches[v - self.num_hosts]

    def link_name(self, link: int, direction: int = 0) -> str:
        a, b = self.vertex_name(int(self.link_a_L[link])), self.vertex_name(int(self.link_b_L[link]))
        return f"{a} -> {b}" if direction == 0 else f"{b} -> {a}"

    @cached_property
    def graph(self):
        """Hosts (kind=host, gpus, nics) and switches (kind=switch, role, level, ports, latency_us) joined by
        links (links = parallel cables, capacity_gbps per direction, latency_us, nics on host links); a
        networkx.Graph, imported on first use (planning never needs it)."""
        import networkx as nx

        g = nx.Graph()
        for n, name in enumerate(self.hosts):
            g.add_node(name, kind="host", index=n, gpus=self.gpus_per_node, nics=self.nics_per_node)
        for s, name in enumerate(self.switches):
            g.add_node(name, kind="switch", index=s, role=self.switch_role_S[s], level=int(self.switch_level_S[s]),
                       ports=int(self.switch_ports_S[s]), latency_us=self.switch_latency_us)
        nics: dict[int, list[int]] = {}
        for n, row in enumerate(self.nic_link_NR.tolist()):
            for r, link in enumerate(row):
                nics.setdefault(link, []).append(r)
        for link in range(self.num_links):
            a, b = int(self.link_a_L[link]), int(self.link_b_L[link])
            attrs = dict(links=int(self.link_count_L[link]), capacity_gbps=float(self.link_gbps_L[link]),
                         latency_us=float(self.link_latency_us_L[link]), index=link)
            if link in nics:
                attrs["nics"] = tuple(nics[link])
            g.add_edge(self.vertex_name(a), self.vertex_name(b), **attrs)
        return g


def bfs_hops(adj: np.ndarray) -> np.ndarray:
    """int16 [V, V] hop distances of a symmetric boolean adjacency (UNREACHABLE where no path)."""
    V = adj.shape[0]
    dist = np.full((V, V), UNREACHABLE, dtype=np.int16)
    np.fill_diagonal(dist, 0)
    a = adj.astype(np.float32)
    reached = np.eye(V, dtype=bool)
    frontier = np.eye(V, dtype=np.float32)
    d = 0
    while True:
        d += 1
        nxt = ((frontier @ a) > 0) & ~reached
        if not nxt.any():
            return dist
        dist[nxt] = d
        reached |= nxt
        frontier = nxt.astype(np.float32)


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _compact(keys: list[int]) -> np.ndarray:
    """Renumber keys 0, 1, 2, ... in order of first appearance."""
    ids: dict[int, int] = {}
    return np.array([ids.setdefault(k, len(ids)) for k in keys], dtype=np.int64)
