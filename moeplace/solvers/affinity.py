"""Pairwise affinity between items: the proxy that guides construction and candidate moves.

The exact objective is a hypergraph one (see `moeplace.placement.cost`); solvers use this symmetric
weighted graph only to choose what to try, and accept a move only on its exact delta.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moeplace.placement.traffic import HOME, PAD, Traffic


@dataclass(frozen=True, eq=False)
class Affinity:
    """CSR of a symmetric graph: item i's neighbours are idx[ptr[i]:ptr[i+1]] with weights w[...]."""

    ptr: np.ndarray
    idx: np.ndarray
    w: np.ndarray

    def neighbours(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.ptr[i], self.ptr[i + 1]
        return self.idx[lo:hi], self.w[lo:hi]

    @property
    def degree(self) -> np.ndarray:
        return np.add.reduceat(self.w, self.ptr[:-1]) * (np.diff(self.ptr) > 0) if self.w.size else np.zeros(
            self.ptr.size - 1)


def build_affinity(traffic: Traffic) -> Affinity:
    """Source-target pairs weigh the hyperedge's bytes; target-target pairs half of it (dedup saves one)."""
    src, dst, w = traffic.src_H, traffic.dst_HK, traffic.bytes_H
    K = dst.shape[1]
    a_parts, b_parts, w_parts = [], [], []
    for j in range(K):
        ok = (dst[:, j] != PAD) & (src != HOME) & (dst[:, j] != src)
        a_parts.append(src[ok])
        b_parts.append(dst[ok, j])
        w_parts.append(w[ok])
        for i in range(j):
            ok2 = (dst[:, j] != PAD) & (dst[:, i] != PAD)
            a_parts.append(dst[ok2, i])
            b_parts.append(dst[ok2, j])
            w_parts.append(0.5 * w[ok2])
    a = np.concatenate(a_parts).astype(np.int64)
    b = np.concatenate(b_parts).astype(np.int64)
    ww = np.concatenate(w_parts)
    n = traffic.num_items
    a2 = np.concatenate([a, b])
    b2 = np.concatenate([b, a])
    w2 = np.concatenate([ww, ww])
    key = a2 * n + b2
    uniq, inv = np.unique(key, return_inverse=True)
    wsum = np.bincount(inv.ravel(), weights=w2, minlength=uniq.size)
    rows = uniq // n
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(ptr, rows + 1, 1)
    return Affinity(ptr=np.cumsum(ptr), idx=(uniq % n).astype(np.int64), w=wsum)
