"""The pair model as sparse rows: what the MIP, CP-SAT and LP-bound code all build from.

Variables, in order: x[level, pair] for every level, z[item, domain] (item-major), g[term]. Rows are
`lo <= sum coef * var <= hi` in COO form; triangle rows come separately (all of them for small models,
or only the violated ones, found by `violated_triangles`, which also finds the pair-domain triples).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moeplace.solvers.pairmodel import PairModel

INF = float("inf")


@dataclass(frozen=True)
class Rows:
    """Constraint rows in COO form: row r is lo[r] <= sum over entries (r, col, val) <= hi[r]."""

    row: np.ndarray
    col: np.ndarray
    val: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @property
    def num_rows(self) -> int:
        return int(self.lo.size)

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        parts = [p for p in parts if p.num_rows]
        if not parts:
            return Rows(*(np.zeros(0, dtype=t) for t in (np.int64, np.int64, float, float, float)))
        offs = np.cumsum([0] + [p.num_rows for p in parts[:-1]])
        return Rows(row=np.concatenate([p.row + o for p, o in zip(parts, offs)]),
                    col=np.concatenate([p.col for p in parts]), val=np.concatenate([p.val for p in parts]),
                    lo=np.concatenate([p.lo for p in parts]), hi=np.concatenate([p.hi for p in parts]))


class _RowBuilder:
    def __init__(self) -> None:
        self.row: list[np.ndarray] = []
        self.col: list[np.ndarray] = []
        self.val: list[np.ndarray] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.count = 0

    def add(self, ptr: np.ndarray, col: np.ndarray, val: np.ndarray, lo, hi) -> None:
        """Rows given as CSR (ptr over col/val); lo and hi scalars or arrays."""
        k = ptr.size - 1
        if k == 0:
            return
        self.row.append(np.repeat(np.arange(k), np.diff(ptr)) + self.count)
        self.col.append(np.asarray(col, dtype=np.int64))
        self.val.append(np.asarray(val, dtype=np.float64))
        self.lo.append(np.broadcast_to(np.asarray(lo, dtype=np.float64), (k,)).copy())
        self.hi.append(np.broadcast_to(np.asarray(hi, dtype=np.float64), (k,)).copy())
        self.count += k

    def fixed(self, cols: np.ndarray, vals: np.ndarray, lo, hi) -> None:
        """Rows that each have the same number of entries: cols and vals are [rows, width]."""
        k, width = cols.shape
        self.add(np.arange(k + 1) * width, cols.ravel(), vals.ravel(), lo, hi)

    def build(self) -> Rows:
        if not self.row:
            return Rows.concat([])
        return Rows(np.concatenate(self.row), np.concatenate(self.col), np.concatenate(self.val),
                    np.concatenate(self.lo), np.concatenate(self.hi))


@dataclass(frozen=True)
class Layout:
    """Column offsets of the variable blocks."""

    num_pairs: int
    num_levels: int
    num_items: int
    num_z: int
    num_g: int

    @property
    def z0(self) -> int:
        return self.num_levels * self.num_pairs

    @property
    def g0(self) -> int:
        return self.z0 + self.num_items * self.num_z

    @property
    def num_vars(self) -> int:
        return self.g0 + self.num_g


def layout(m: PairModel) -> Layout:
    return Layout(m.num_pairs, len(m.levels), m.num_items, m.num_z_domains, int(m.g_coef.size))


def objective(m: PairModel) -> tuple[np.ndarray, float]:
    """(cost [vars], constant)."""
    lay = layout(m)
    c = np.zeros(lay.num_vars)
    np.add.at(c, m.lin_l * lay.num_pairs + m.pair_index(m.lin_i, m.lin_j), m.lin_c)
    if m.z_c.size:
        np.add.at(c, lay.z0 + m.z_item * lay.num_z + m.z_dom, m.z_c)
    c[lay.g0:] = m.g_coef
    return c, m.const


def base_rows(m: PairModel) -> Rows:
    """Every row but the triangles (partners = size - 1, or <= for a model that is not `full`)."""
    lay = layout(m)
    n, P, Z = m.num_items, m.num_pairs, m.num_z_domains
    b = _RowBuilder()
    items = np.arange(n)
    others = np.array([np.delete(items, i) for i in items]).reshape(n, n - 1)
    pidx = m.pair_index(np.repeat(items, n - 1), others.ravel()).reshape(n, n - 1)
    for k in range(len(m.levels)):
        cols = k * P + pidx
        if k < m.z_level:
            lo = m.cap_L[k] - 1 if m.full else -INF
            b.fixed(cols, np.ones_like(cols, dtype=float), lo, m.cap_L[k] - 1)
        if k > 0:
            q = np.arange(P)
            b.fixed(np.stack([(k - 1) * P + q, k * P + q], axis=1), np.tile([1.0, -1.0], (P, 1)), -INF, 0.0)
    if Z:
        zc = lay.z0 + items[:, None] * Z + np.arange(Z)[None, :]
        b.fixed(zc, np.ones((n, Z)), 1.0, 1.0)
        b.fixed(zc.T.copy(), np.ones((Z, n)), m.z_size_D.astype(float), m.z_size_D.astype(float))
        zdom_G = m.levels[m.z_level].domain_G
        iu, ju = np.triu_indices(n, 1)
        for k in range(m.z_level, len(m.levels)):
            up_G = m.levels[k].domain_G
            # domain E at level k holds the z domains D with E = up(D)
            up_D = np.array([up_G[zdom_G == D][0] for D in range(Z)])
            for E in np.unique(up_D):
                Ds = np.flatnonzero(up_D == E)
                # x_ij + sum_{D in E} z_iD - sum_{D in E} z_jD <= 1, and with i and j swapped
                for a, bb in ((iu, ju), (ju, iu)):
                    cols = np.concatenate([(k * P + np.arange(P))[:, None], lay.z0 + a[:, None] * Z + Ds[None, :],
                                           lay.z0 + bb[:, None] * Z + Ds[None, :]], axis=1)
                    vals = np.concatenate([np.ones((P, 1)), np.ones((P, Ds.size)), -np.ones((P, Ds.size))], axis=1)
                    b.fixed(cols, vals, -INF, 1.0)
            size_D = np.array([m.z_size_D[up_D == E].sum() for E in up_D], dtype=float)
            cols = np.concatenate([k * P + pidx, lay.z0 + items[:, None] * Z + np.arange(Z)[None, :]], axis=1)
            vals = np.concatenate([np.ones((n, n - 1)), -np.tile(size_D - 1, (n, 1))], axis=1)
            b.fixed(cols, vals, 0.0, 0.0)
        for D, D2 in m.z_sym:
            # z[i, D2] <= sum_{i' < i} z[i', D]: D2's smallest item comes after D's
            for i in range(n):
                cols = np.concatenate([[lay.z0 + i * Z + D2], lay.z0 + np.arange(i) * Z + D])
                vals = np.concatenate([[1.0], -np.ones(i)])
                b.add(np.array([0, cols.size]), cols, vals, -INF, 0.0)
    _g_rows(m, lay, b)
    for k, level in enumerate(m.levels if m.balance_groups else ()):
        # at most balance_cap items of one MoE layer per GPU, so per domain balance_cap x its GPUs
        cap = m.balance_cap * int(np.bincount(level.domain_G).max())
        if cap >= m.cap_L[k]:
            continue
        for grp in m.balance_groups:
            for i in grp:
                rest = grp[grp != i]
                cols = k * P + m.pair_index(np.full(rest.size, i), rest)
                b.add(np.array([0, rest.size]), cols, np.ones(rest.size), -INF, cap - 1)
    return b.build()


def _g_rows(m: PairModel, lay: Layout, b: _RowBuilder) -> None:
    P, Z = lay.num_pairs, lay.num_z
    ref_col = m.ref_l * P + m.pair_index(m.ref_i, m.ref_j)
    Q = m.g_coef.size
    if Q == 0:
        return
    cnt = np.diff(m.g_ptr)
    pos = m.g_coef > 0
    has_z = m.g_zitem >= 0
    # positive: g + sum refs (- z) >= 1 (0)
    for q_set, with_z in ((pos & ~has_z, False), (pos & has_z, True)):
        qs = np.flatnonzero(q_set)
        if not qs.size:
            continue
        width = cnt[qs] + 1 + with_z
        ptr = np.concatenate([[0], np.cumsum(width)])
        cols, vals = [], []
        for q in qs.tolist():
            cols.append(np.concatenate([[lay.g0 + q], ref_col[m.g_ptr[q]:m.g_ptr[q + 1]],
                                        [lay.z0 + m.g_zitem[q] * Z + m.g_zdom[q]] if with_z else []]))
            vals.append(np.concatenate([[1.0], np.ones(cnt[q]), [-1.0] if with_z else []]))
        b.add(ptr, np.concatenate(cols).astype(np.int64), np.concatenate(vals), 0.0 if with_z else 1.0, INF)
    # negative: g + ref <= 1 for every ref, g - z <= 0
    neg = np.flatnonzero(~pos)
    if neg.size:
        seg = np.repeat(np.arange(Q), cnt)
        sel = np.isin(seg, neg)
        k = int(sel.sum())
        b.fixed(np.stack([lay.g0 + seg[sel], ref_col[sel]], axis=1), np.ones((k, 2)), -INF, 1.0)
        nz = neg[has_z[neg]]
        if nz.size:
            b.fixed(np.stack([lay.g0 + nz, lay.z0 + m.g_zitem[nz] * Z + m.g_zdom[nz]], axis=1),
                    np.tile([1.0, -1.0], (nz.size, 1)), -INF, 0.0)


def triangle_levels(m: PairModel) -> list[int]:
    """Levels with triangle inequalities: all (they are needed below the z level and tighten it above)."""
    return list(range(len(m.levels)))


def all_triangles(m: PairModel) -> np.ndarray:
    """int [rows, 3] columns (a, b, c) of every a + b - c <= 1 over the triangle levels."""
    n, P = m.num_items, m.num_pairs
    i, j, k = (np.asarray(v) for v in zip(*_triples(n))) if n >= 3 else (np.zeros(0, int),) * 3
    ij, jk, ik = m.pair_index(i, j), m.pair_index(j, k), m.pair_index(i, k)
    base = np.concatenate([np.stack([ij, jk, ik], 1), np.stack([ij, ik, jk], 1), np.stack([jk, ik, ij], 1)])
    return np.concatenate([base + lv * P for lv in triangle_levels(m)]) if triangle_levels(m) else base[:0]


def _triples(n: int):
    idx = np.array(np.triu_indices(n, 1)).T
    for i, j in idx:
        for k in range(j + 1, n):
            yield i, j, k


def triangle_rows(tri: np.ndarray) -> Rows:
    """Rows a + b + sign * c <= 1 from [rows, 3] (triangles, sign -1) or [rows, 4] (column 3 is the sign)."""
    k = tri.shape[0]
    sign = tri[:, 3].astype(float) if tri.shape[1] == 4 else -np.ones(k)
    vals = np.stack([np.ones(k), np.ones(k), sign], axis=1)
    return Rows(row=np.repeat(np.arange(k), 3), col=tri[:, :3].ravel().astype(np.int64), val=vals.ravel(),
                lo=np.full(k, -INF), hi=np.ones(k))


def violated_triangles(m: PairModel, values: np.ndarray, tol: float = 1e-6, limit: int = 5000) -> np.ndarray:
    """The most violated cuts at `values` (at most `limit` per kind and level), as [rows, 4] (a, b, c, sign):
    triangles x_ij + x_jk - x_ik <= 1 on every level, and on levels whose domains hold 2 items the triples
    x_ij + x_jk + x_ik <= 1 (no three items share a pair's domain; the LP's odd cycles break them)."""
    n, P = m.num_items, m.num_pairs
    iu, ju = np.triu_indices(n, 1)
    found = []
    for lv in triangle_levels(m):
        X = np.zeros((n, n))
        X[iu, ju] = values[lv * P:(lv + 1) * P]
        X = X + X.T
        # V[i, j, k] = x_ij + x_jk - x_ik (apex j), for i < k
        V = X[:, :, None] + X[None, :, :] - X[:, None, :]
        a, j, c = np.nonzero(V > 1 + tol)
        keep = (a < c) & (a != j) & (j != c)
        a, j, c = a[keep], j[keep], c[keep]
        if a.size:
            order = np.argsort(-V[a, j, c], kind="stable")[:limit]
            a, j, c = a[order], j[order], c[order]
            cols = np.stack([m.pair_index(a, j), m.pair_index(j, c), m.pair_index(a, c)], 1) + lv * P
            found.append(np.concatenate([cols, -np.ones((a.size, 1), dtype=np.int64)], axis=1))
        if lv < m.z_level and m.cap_L[lv] == 2:
            S = X[:, :, None] + X[None, :, :] + X[:, None, :]
            a, j, c = np.nonzero(S > 1 + tol)
            keep = (a < j) & (j < c)
            a, j, c = a[keep], j[keep], c[keep]
            if a.size:
                order = np.argsort(-S[a, j, c], kind="stable")[:limit]
                a, j, c = a[order], j[order], c[order]
                cols = np.stack([m.pair_index(a, j), m.pair_index(j, c), m.pair_index(a, c)], 1) + lv * P
                found.append(np.concatenate([cols, np.ones((a.size, 1), dtype=np.int64)], axis=1))
    return np.concatenate(found) if found else np.zeros((0, 4), dtype=np.int64)
