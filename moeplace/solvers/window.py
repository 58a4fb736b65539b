"""Exact re-partitioning of two nodes: the large-neighbourhood move of the `lns` backend.

Free every item of nodes a and b (one expert per GPU) and choose, among all ways to split them back with
the same counts, the split of lowest exact objective — C(16, 8) = 12,870 splits for two full nodes.

Every hyperedge touching the freed items has m <= k + 1 free members, so its cost is a table over the 2^m
sides of those members; the kernel of `moeplace.placement.cost` fills the tables (so the move is exact for
the one objective, node-level dedup and tiers included), tables of hyperedges with the same free members are
summed, and every split is scored by gathering from the summed tables.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

from moeplace.placement.cost import edge_costs
from moeplace.placement.traffic import HOME, PAD

MAX_FREE = 16


@lru_cache(maxsize=32)
def _splits(n: int, on_b: int) -> np.ndarray:
    """bool [splits, n]: every way to send `on_b` of n items to side b (True)."""
    out = np.zeros((0, n), dtype=bool) if on_b > n else None
    if out is not None:
        return out
    combos = np.asarray(list(itertools.combinations(range(n), on_b)), dtype=np.int64).reshape(-1, on_b)
    P = np.zeros((combos.shape[0], n), dtype=bool)
    P[np.repeat(np.arange(combos.shape[0]), on_b), combos.ravel()] = True
    P.setflags(write=False)
    return P


def _moebius(table: np.ndarray, M: int) -> np.ndarray:
    """Multilinear coefficients of each row's function of M bits: f(x) = sum_S coef[S] prod_{j in S} x_j."""
    coef = table.copy()
    for j in range(M):
        step = 1 << j
        for mask in range(1 << M):
            if mask & step:
                coef[:, mask] -= coef[:, mask ^ step]
    return coef


def _monomials(coef: np.ndarray, order: np.ndarray, M: int):
    """(slots [T, d], values [T]) of every nonzero monomial of degree d = 1..M: the multilinear polynomial
    of all edges together, in the free items' sides."""
    for mask in range(1, 1 << M):
        bits = [j for j in range(M) if mask >> j & 1]
        c = coef[:, mask]
        nz = np.flatnonzero(c)
        if nz.size:
            yield order[nz][:, bits], c[nz]


def _scores_by_products(coef, order, M: int, n_free: int, P: np.ndarray, current: np.ndarray):
    """Score every split [S] and the current one as sums of products of sides (degree <= 3 stays in BLAS)."""
    lin = np.zeros(n_free)
    quad = np.zeros((n_free, n_free))
    cubic = np.zeros((n_free, n_free, n_free))
    for cols, vals in _monomials(coef, order, M):
        if cols.shape[1] == 1:
            np.add.at(lin, cols[:, 0], vals)
        elif cols.shape[1] == 2:
            np.add.at(quad, (cols[:, 0], cols[:, 1]), vals)
        else:
            np.add.at(cubic, (cols[:, 0], cols[:, 1], cols[:, 2]), vals)
    cubic_JL = cubic.reshape(n_free, -1)
    used = np.flatnonzero(np.any(cubic_JL != 0.0, axis=0))       # (j, l) pairs with a cubic term
    cubic_used, used_j, used_l = cubic_JL[:, used], used // n_free, used % n_free

    def score_of(X: np.ndarray) -> np.ndarray:
        out = X @ lin + ((X @ quad) * X).sum(axis=1)
        if used.size:
            out += ((X @ cubic_used) * (X[:, used_j] * X[:, used_l])).sum(axis=1)
        return out

    return score_of(P), float(score_of(current[None, :])[0])


def _scores_by_subset_sums(coef, order, M: int, n_free: int, P: np.ndarray, current: np.ndarray):
    """Score every split [S] and the current one when monomials of degree > 3 exist (top-k >= 3): a split's
    score is the sum of the monomials whose items all lie on side b, i.e. a subset sum over the 2^n_free
    side patterns, computed for all patterns at once (n_free passes over 2^16 numbers at most)."""
    F = np.zeros(1 << n_free)
    for cols, vals in _monomials(coef, order, M):
        np.add.at(F, (1 << cols).sum(axis=1), vals)              # distinct slots: the sum is the bit mask
    for j in range(n_free):
        view = F.reshape(-1, 2, 1 << j)
        view[:, 1, :] += view[:, 0, :]
    weight = 1 << np.arange(n_free)
    return F[(P > 0.5) @ weight], float(F[int((current > 0.5) @ weight)])


def repartition_pair(search, a: int, b: int) -> float:
    """Re-split the items of nodes a and b optimally; apply it if it lowers the objective. Returns the delta."""
    p = search.p
    if p.experts_per_gpu != 1:
        return 0.0
    gpn = search.gpn
    ga = np.arange(a * gpn, (a + 1) * gpn)
    gb = np.arange(b * gpn, (b + 1) * gpn)
    items_a = search.gpu_items[ga, 0]
    items_b = search.gpu_items[gb, 0]
    free = np.concatenate([items_a[items_a >= 0], items_b[items_b >= 0]])
    n_free = free.size
    if n_free < 2 or n_free > MAX_FREE:
        return 0.0
    count_b = int((items_b >= 0).sum())
    tr = p.traffic
    edges = search.edges_of_items(free)
    if edges.size == 0:  # experts no token reaches: nothing to gain by moving them
        return 0.0
    src = tr.src_H[edges]
    dst = tr.dst_HK[edges]
    members = np.concatenate([src[:, None], dst], axis=1)          # [H, K+1]
    slot = np.full(p.num_items, -1, dtype=np.int64)
    slot[free] = np.arange(n_free)
    is_free = (members >= 0) & (slot[np.maximum(members, 0)] >= 0)
    free_slot = np.where(is_free, slot[np.maximum(members, 0)], n_free)   # n_free = "not free"
    # canonical order of each edge's free members: ascending slot; bit j <-> j-th free member
    order = np.sort(free_slot, axis=1)
    m = is_free.sum(axis=1)
    M = int(m.max())
    if M > gpn:
        return 0.0
    bit_of = np.full(members.shape, -1, dtype=np.int64)
    for j in range(M):
        bit_of[(free_slot == order[:, j:j + 1]) & is_free] = j
    cur_gpu = search.item_gpu
    # A free member with bit j on side a (b) sits on GPU ga[j] (gb[j]): members of one edge get distinct
    # GPUs, and with one expert per GPU the cost does not depend on which GPU of a node an item has.
    base_src = np.where(src == HOME, HOME, cur_gpu[np.maximum(src, 0)])
    base_dst = np.where(dst != PAD, cur_gpu[np.maximum(dst, 0)], PAD)
    # Only the 2^m sides of an edge's own m free members are evaluated; a side that sets bits the edge does
    # not have costs what the same side without them does. One kernel call per side keeps temporaries small.
    sides_V = np.arange(1 << M)
    bit = np.maximum(bit_of, 0)
    gpu_a, gpu_b = ga[bit % gpn], gb[bit % gpn]
    table = np.empty((edges.size, 1 << M))
    for v in range(1 << M):
        rows = np.flatnonzero(m >= v.bit_length())
        gpu_if_free = np.where((v >> bit[rows]) & 1 == 1, gpu_b[rows], gpu_a[rows])
        free_R = is_free[rows]
        g_src = np.where(free_R[:, 0], gpu_if_free[:, 0], base_src[rows])
        g_dst = np.where(free_R[:, 1:], gpu_if_free[:, 1:], base_dst[rows])
        table[rows, v] = edge_costs(p, g_src, g_dst, search.home_cost_N)
    table = np.take_along_axis(table, sides_V[None, :] & ((1 << m)[:, None] - 1), axis=1)
    table *= tr.bytes_H[edges][:, None]
    coef = _moebius(table, M)                                            # multilinear coefficients
    P = _splits(n_free, count_b).astype(np.float64)                      # [S, n_free], 1.0 = side b
    current = np.zeros(n_free)
    current[int((items_a >= 0).sum()):] = 1.0
    scores = _scores_by_subset_sums if M > 3 else _scores_by_products
    score, cur_score = scores(coef, order, M, n_free, P, current)
    best = int(np.argmin(score))
    delta = float(score[best]) - cur_score
    search.evals += 1
    if delta >= -1e-9 * max(1.0, abs(cur_score)):
        return 0.0
    on_b = P[best] > 0.5
    new_a = free[~on_b]
    new_b = free[on_b]
    search.place_on_node(a, new_a)
    search.place_on_node(b, new_b)
    return delta
