"""The exact objective as a linear model over "same domain" pair variables (clique-partitioning form).

Why pairs: item-to-GPU booleans leave every permutation of interchangeable nodes in the model, and their LP
relaxation is worthless (spread every item evenly and almost nothing crosses). A pair variable
x[l, i, j] = 1 when items i and j share a domain of level l (GPU, node, leaf, pod) has no such symmetry, and
with the triangle inequalities x_ij + x_jk - x_ik <= 1 its LP bound is close to the optimum.

Objective (the one of `moeplace.placement.cost`, node-level dedup included). With tier costs c and
nv = c[nvlink], a hyperedge from item s to targets t_1..t_k costs

    nv * G_gpu + (c_leaf - nv) * G_node + (c_pod - c_leaf) * G_leaf + (c_core - c_pod) * G_pod

where G_gpu counts the distinct target GPUs other than the source's, and G_level the distinct target
nodes outside the source's domain at that level. Target t_j is counted when it leaves the source's domain
and no earlier target shares its node (its GPU for G_gpu):

    g_j >= 1 - x[level, s, t_j] - sum_{j' < j} x[fine, t_j, t_j'],   g_j >= 0,

exact under minimisation (the first target needs no g: it is 1 - x[level, s, t_1]). A hyperedge from HOME
costs h(n) for every node it touches plus NVLink for further GPUs there (see docs/flow-models.md); h is the
same for nodes of equal position. Levels whose domains differ in size (a short last leaf or pod) are
modelled with item-to-domain booleans z[i, D] instead (one level, the lowest irregular one; coarser levels
follow from it), so every fabric the tree builders make is exact.

Empty slots are filled with dummy items (no traffic), so every domain is exactly full: each item has
size - 1 partners at every level, and a nested partition with those sizes always fits the fabric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moeplace.errors import InputError
from moeplace.placement.cost import home_tier_dist
from moeplace.placement.problem import Problem
from moeplace.placement.traffic import HOME, PAD
from moeplace.topologies.base import TIER_CORE, TIER_LEAF, TIER_NVLINK, TIER_POD

MAX_EXACT_SLOTS = 128


@dataclass(frozen=True)
class Level:
    """One level of the fabric tree: `domain_G` (int [gpus]) names each GPU's domain; leaving costs `delta`."""

    name: str
    delta: float
    domain_G: np.ndarray

    @property
    def num_domains(self) -> int:
        return int(self.domain_G.max()) + 1


@dataclass(frozen=True, eq=False)
class PairModel:
    """min const + lin_c . x[lin_l, lin_i, lin_j] + z_c . z[z_item, z_dom] + sum_q g_coef[q] * g[q].

    Pair variables exist for every level and every item pair i < j (`pair_index`); levels below `z_level`
    carry degree and triangle constraints, levels from `z_level` up are tied to the z booleans.
    g term q: g >= base - sum of its refs (coef > 0) or g <= base and g <= 1 - ref (coef < 0), where base
    is 1, or z[g_zitem[q], g_zdom[q]] when g_zitem[q] >= 0; its refs are (ref_l, ref_i, ref_j)
    [g_ptr[q]:g_ptr[q+1]].
    """

    num_items: int               # real items plus dummies (= slots)
    num_real: int
    levels: tuple[Level, ...]    # finest first
    cap_L: np.ndarray            # int [levels]: items per domain (regular levels)
    z_level: int                 # index into levels, or len(levels) when every level is regular
    z_size_D: np.ndarray         # int [z domains]: items per domain of the z level
    z_sym: tuple[tuple[int, int], ...]  # (D, D') interchangeable z domains, D' ordered after D
    const: float
    lin_l: np.ndarray
    lin_i: np.ndarray
    lin_j: np.ndarray
    lin_c: np.ndarray
    z_item: np.ndarray
    z_dom: np.ndarray
    z_c: np.ndarray
    g_coef: np.ndarray
    g_zitem: np.ndarray
    g_zdom: np.ndarray
    g_ptr: np.ndarray
    ref_l: np.ndarray
    ref_i: np.ndarray
    ref_j: np.ndarray
    balance_groups: tuple[np.ndarray, ...]  # items of one MoE layer, at most `balance_cap` per GPU
    balance_cap: int
    full: bool = True            # every domain exactly full (else: at most full, a relaxation)

    @property
    def num_pairs(self) -> int:
        return self.num_items * (self.num_items - 1) // 2

    @property
    def num_z_domains(self) -> int:
        return int(self.z_size_D.size)

    def pair_index(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Index of pair (min, max) among the n(n-1)/2 pairs of one level."""
        a, b = np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)
        n = self.num_items
        return a * n - a * (a + 1) // 2 + (b - a - 1)


def fabric_levels(problem: Problem) -> list[Level]:
    """The levels that cost something, finest first; a level with the same domains as the one below merges."""
    c = problem.tier_costs.array
    nv = c[TIER_NVLINK]
    G, gpn = problem.num_gpus, problem.gpus_per_node
    node_G = np.arange(G) // gpn
    levels = []
    if problem.experts_per_gpu > 1:
        levels.append(Level("gpu", float(nv), np.arange(G)))
    levels.append(Level("node", float(c[TIER_LEAF] - nv), node_G))
    tier = problem.fabric.node_tier_NN
    for t, name in ((TIER_POD, "leaf"), (TIER_CORE, "pod")):
        same = tier < t
        _, label_N = np.unique(same, axis=0, return_inverse=True)
        label_N = label_N.ravel()
        if not np.array_equal(same, label_N[:, None] == label_N[None, :]):
            raise InputError(f"node tiers are not a tree at tier {t}: the exact models need nested domains",
                             field="topology")
        # number domains in order of first node, so that numbering follows the hosts
        first = np.unique(label_N, return_index=True)[1]
        remap = np.empty_like(first)
        remap[np.argsort(first)] = np.arange(first.size)
        label_N = remap[label_N]
        delta = float(c[t] - c[t - 1])
        prev = levels[-1].domain_G
        dom_G = label_N[node_G]
        if np.array_equal(dom_G, prev):
            levels[-1] = Level(levels[-1].name, levels[-1].delta + delta, prev)
        elif label_N.max() > 0 and delta > 0:
            levels.append(Level(name, delta, dom_G))
    return levels


def check_exact_size(problem: Problem, solver: str, max_slots: int = MAX_EXACT_SLOTS) -> None:
    """Refuse, with the arithmetic, instances whose pair model would not fit in memory and time."""
    slots = problem.num_gpus * problem.experts_per_gpu
    if slots > max_slots:
        pairs = slots * (slots - 1) // 2
        raise InputError(f"{problem.num_items} items on {slots} slots need {pairs:,} pair variables per level "
                         f"and {slots * (slots - 1) * (slots - 2) // 2:,} triangle inequalities; the exact "
                         f"backend {solver!r} takes at most {max_slots} slots (use 'lns' and its bound)",
                         field="--solver")


class _Terms:
    """Accumulates linear and g terms, merging identical ones."""

    def __init__(self) -> None:
        self.const = 0.0
        self.lin: dict[tuple[int, int, int], float] = {}
        self.zlin: dict[tuple[int, int], float] = {}
        self.g: dict[tuple, float] = {}

    def pair(self, level: int, i: int, j: int, coef: float) -> None:
        key = (level, min(i, j), max(i, j))
        self.lin[key] = self.lin.get(key, 0.0) + coef

    def first(self, coef: float, base: tuple[int, int] | None, refs: list[tuple[int, int, int]]) -> None:
        key = (base, tuple(sorted((lv, min(a, b), max(a, b)) for lv, a, b in refs)))
        self.g[key] = self.g.get(key, 0.0) + coef


def _add_edge(terms: _Terms, s: int, targets: list[int], w: float, levels: list[Level], fine_node: int,
              gpu_level: int | None, nv: float, home_D: np.ndarray | None, home_mean: float,
              z_level: int) -> None:
    """One hyperedge's cost, by the decomposition in the module docstring."""
    if s != HOME:
        if gpu_level is None:
            terms.const += w * nv * len(targets)
        for lv, level in enumerate(levels):
            delta = w * level.delta
            if delta == 0:
                continue
            fine = gpu_level if lv == gpu_level else fine_node
            for j, t in enumerate(targets):
                if j == 0:
                    terms.const += delta
                    terms.pair(lv, s, t, -delta)
                else:
                    terms.first(delta, None, [(lv, s, t)] + [(fine, t, u) for u in targets[:j]])
        return
    # From HOME: h(node) for each node touched, NVLink for each further GPU there.
    for j, t in enumerate(targets):
        if gpu_level is None:
            terms.const += w * nv
        elif j == 0:
            terms.const += w * nv
        else:
            terms.first(w * nv, None, [(gpu_level, t, u) for u in targets[:j]])
        # the cheapest node's h for every node (strong form), the rest through z (irregular fabrics only)
        h_min = home_mean if home_D is None else float(home_D.min())
        if j == 0:
            terms.const += w * (h_min - nv)
        else:
            terms.first(w * (h_min - nv), None, [(fine_node, t, u) for u in targets[:j]])
        if home_D is None:
            continue
        for D, h in enumerate(home_D):
            if h - h_min <= 0:
                continue
            if j == 0:
                terms.zlin[(t, D)] = terms.zlin.get((t, D), 0.0) + w * (h - h_min)
            else:
                terms.first(w * (h - h_min), (t, D), [(fine_node, t, u) for u in targets[:j]])


def build_pair_model(problem: Problem) -> PairModel:
    """The exact model of `problem`: every level, dummies in the empty slots, z for an irregular level."""
    return _build(problem, np.arange(problem.num_items), np.arange(problem.traffic.num_edges), relaxed=False)


def build_window_model(problem: Problem, items: np.ndarray, edges: np.ndarray) -> PairModel:
    """A relaxation on a part of the problem, for bounds: the hyperedges `edges`, whose members are all in
    `items` (renumbered 0.. in that order); only the GPU and node levels (the costs of leaving a leaf or
    pod are >= 0 and dropped), home cost at its cheapest node, and at most (not exactly) a domain's size
    of partners. Its optimum is at most the optimum of those hyperedges' cost over all plans."""
    return _build(problem, np.asarray(items), np.asarray(edges), relaxed=True)


def _build(problem: Problem, items: np.ndarray, edges: np.ndarray, relaxed: bool) -> PairModel:
    levels = fabric_levels(problem)
    epg = problem.experts_per_gpu
    gpu_level = 0 if epg > 1 else None
    fine_node = 1 if epg > 1 else 0
    if relaxed:
        levels = levels[:fine_node + 1]
    slots = items.size if relaxed else problem.num_gpus * epg
    sizes = [np.bincount(lv.domain_G) * epg for lv in levels]
    z_level = len(levels) if relaxed else next((k for k, s in enumerate(sizes) if s.min() != s.max()), len(levels))
    c = problem.tier_costs.array
    nv = float(c[TIER_NVLINK])
    tr = problem.traffic
    has_home = bool((tr.src_H[edges] == HOME).any())
    home_N = home_tier_dist(problem) @ c if has_home else np.zeros(problem.num_nodes)
    node_G = np.arange(problem.num_gpus) // problem.gpus_per_node
    home_D = None
    home_mean = float(home_N.min() if relaxed else home_N.mean())
    z_size = np.zeros(0, dtype=np.int64)
    z_sym: list[tuple[int, int]] = []
    if z_level < len(levels):
        dom_G = levels[z_level].domain_G
        z_size = sizes[z_level]
        home_D = np.zeros(z_size.size)
        for D in range(z_size.size):
            h = home_N[node_G[dom_G == D]]
            assert np.allclose(h, h[0], rtol=1e-12, atol=1e-12), "home cost varies inside a domain"
            home_D[D] = h[0]
        parent = levels[z_level + 1].domain_G if z_level + 1 < len(levels) else np.zeros_like(dom_G)
        par_D = np.array([parent[dom_G == D][0] for D in range(z_size.size)])
        for D in range(z_size.size - 1):
            same = [E for E in range(D + 1, z_size.size) if z_size[E] == z_size[D] and par_D[E] == par_D[D]
                    and abs(home_D[E] - home_D[D]) <= 1e-12 * max(1.0, abs(home_D[D]))]
            if same:
                z_sym.append((D, same[0]))
    elif has_home and not relaxed and not np.allclose(home_N, home_mean, rtol=1e-12, atol=1e-12):
        raise AssertionError("home cost varies on a regular fabric")

    renum = np.full(problem.num_items, -1, dtype=np.int64)
    renum[items] = np.arange(items.size)
    terms = _Terms()
    src, dst, w_H = tr.src_H[edges], tr.dst_HK[edges], tr.bytes_H[edges]
    for s, row, w in zip(src.tolist(), dst.tolist(), w_H.tolist()):
        if w == 0:
            continue
        targets = [int(renum[t]) for t in row if t != PAD]
        if s != HOME:
            s = int(renum[s])
            assert s >= 0, "hyperedge source outside the items"
        assert min(targets) >= 0, "hyperedge target outside the items"
        _add_edge(terms, s, targets, w, levels, fine_node, gpu_level, nv, home_D, home_mean, z_level)

    lin = sorted(terms.lin.items())
    zl = sorted(terms.zlin.items())
    gs = sorted(terms.g.items(), key=lambda kv: (kv[0][0] or (-1, -1), kv[0][1]))
    ptr = np.zeros(len(gs) + 1, dtype=np.int64)
    refs: list[tuple[int, int, int]] = []
    for q, ((_, rr), _) in enumerate(gs):
        refs.extend(rr)
        ptr[q + 1] = len(refs)
    ref = np.asarray(refs, dtype=np.int64).reshape(-1, 3)
    balance: tuple[np.ndarray, ...] = ()
    bcap = epg
    if problem.balance_per_layer and epg > 1 and problem.layer_cap_per_gpu < epg:
        bcap = problem.layer_cap_per_gpu
        layer = problem.item_layer_I[items]
        balance = tuple(np.flatnonzero(layer == lay) for lay in np.unique(layer))
    return PairModel(
        num_items=slots, num_real=items.size, levels=tuple(levels),
        cap_L=np.array([s.max() for s in sizes], dtype=np.int64), z_level=z_level, z_size_D=z_size,
        z_sym=tuple(z_sym), const=terms.const,
        lin_l=np.array([k[0] for k, _ in lin], dtype=np.int64), lin_i=np.array([k[1] for k, _ in lin], dtype=np.int64),
        lin_j=np.array([k[2] for k, _ in lin], dtype=np.int64), lin_c=np.array([v for _, v in lin]),
        z_item=np.array([k[0] for k, _ in zl], dtype=np.int64), z_dom=np.array([k[1] for k, _ in zl], dtype=np.int64),
        z_c=np.array([v for _, v in zl]),
        g_coef=np.array([v for _, v in gs]),
        g_zitem=np.array([k[0][0] if k[0] else -1 for k, _ in gs], dtype=np.int64),
        g_zdom=np.array([k[0][1] if k[0] else -1 for k, _ in gs], dtype=np.int64),
        g_ptr=ptr, ref_l=ref[:, 0].copy(), ref_i=ref[:, 1].copy(), ref_j=ref[:, 2].copy(),
        balance_groups=balance, balance_cap=bcap, full=not relaxed)
