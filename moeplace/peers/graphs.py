"""What the partitioners see: the flow's traffic as a weighted graph or hypergraph, with integer weights.

Two graphs (CSR, symmetric, no self loops; `moeplace.solvers.affinity.Affinity`):

    transfer graph  each transfer's (source item, target item) pair weighs the hyperedge's bytes: what
                    flows between two experts when nothing is deduplicated (the "pairwise weights" a graph
                    partitioner is usually given). A HOME-sourced hyperedge (the ep flow's dispatch) has no
                    item source; its targets form a clique of weight bytes / (targets - 1) each, so that a
                    token dispatched to k experts weighs as much as one sent to two.
    dedup graph     `build_affinity`: source-target pairs weigh the bytes, target-target pairs half of it
                    (two targets on one node share a crossing), the proxy moeplace's own construction uses.

One hypergraph (`hyperedge_pins`): each hyperedge is {source} ∪ targets (HOME sources: the targets alone),
weight = bytes, duplicates pins removed, hyperedges of fewer than two pins dropped. With node-level dedup its
connectivity minus one (km1) is the number of network crossings of the send, so km1 is the chain flow's
cross-node objective exactly (for HOME sources it is off by at most one per hyperedge).

Partitioners take integer weights: `int_weights` scales bytes so that the total is 2^30 (no int32 overflow
inside the libraries, about 9 significant digits), rounding each to at least 1; `max_weight` caps the largest
instead (KaHIP's perfectly balanced refinement, used at imbalance 0, slows down with the weights' magnitude:
24 vertices took 80 s at 2^30 in total and 0.1 s with weights up to 10^3, for the same partition).
"""

from __future__ import annotations

import numpy as np

from moeplace.placement.traffic import HOME, PAD, Traffic
from moeplace.solvers.affinity import Affinity, build_affinity

INT_TOTAL = 2**30


def int_weights(w: np.ndarray, total: int = INT_TOTAL, max_weight: int | None = None) -> np.ndarray:
    """int64 [n]: weights scaled so they sum to about `total` (or so the largest is `max_weight`, keeping the
    sum within `total`), each at least 1."""
    w = np.asarray(w, dtype=np.float64)
    s = w.sum()
    if s <= 0:
        return np.ones(w.shape, dtype=np.int64)
    scale = total / s
    if max_weight is not None:
        scale = min(scale, max_weight / w.max())
    return np.maximum(1, np.rint(w * scale)).astype(np.int64)


def _csr(a: np.ndarray, b: np.ndarray, w: np.ndarray, n: int) -> Affinity:
    keep = a != b
    a, b, w = a[keep], b[keep], w[keep]
    a2, b2 = np.concatenate([a, b]), np.concatenate([b, a])
    key = a2 * n + b2
    uniq, inv = np.unique(key, return_inverse=True)
    wsum = np.bincount(inv.ravel(), weights=np.concatenate([w, w]), minlength=uniq.size)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(ptr, uniq // n + 1, 1)
    return Affinity(ptr=np.cumsum(ptr), idx=(uniq % n).astype(np.int64), w=wsum)


def transfer_graph(traffic: Traffic) -> Affinity:
    src, dst, w = traffic.src_H, traffic.dst_HK, traffic.bytes_H
    K = dst.shape[1]
    valid = dst != PAD
    n_t = valid.sum(axis=1)
    home = src == HOME
    a_parts, b_parts, w_parts = [], [], []
    for j in range(K):
        ok = valid[:, j] & ~home
        a_parts.append(src[ok])
        b_parts.append(dst[ok, j])
        w_parts.append(w[ok])
        for i in range(j):
            ok2 = home & valid[:, i] & valid[:, j]
            a_parts.append(dst[ok2, i])
            b_parts.append(dst[ok2, j])
            w_parts.append(w[ok2] / np.maximum(n_t[ok2] - 1, 1))
    a = np.concatenate(a_parts).astype(np.int64)
    b = np.concatenate(b_parts).astype(np.int64)
    return _csr(a, b, np.concatenate(w_parts), traffic.num_items)


def dedup_graph(traffic: Traffic) -> Affinity:
    return build_affinity(traffic)


GRAPHS = {"transfer": transfer_graph, "dedup": dedup_graph}


def hyperedge_pins(traffic: Traffic) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ptr int64 [E+1], pins int64 [P], bytes float [E]) of the hyperedges with two or more distinct pins.

    Pins of hyperedge e are pins[ptr[e]:ptr[e+1]], sorted ascending.
    """
    members = np.concatenate([traffic.src_H[:, None], traffic.dst_HK], axis=1).astype(np.int64)
    members = np.sort(members, axis=1)
    dup = np.zeros(members.shape, dtype=bool)
    dup[:, 1:] = members[:, 1:] == members[:, :-1]
    keep = (members >= 0) & ~dup
    count = keep.sum(axis=1)
    rows = count >= 2
    keep, members = keep[rows], members[rows]
    ptr = np.concatenate([[0], np.cumsum(count[rows])]).astype(np.int64)
    return ptr, members[keep], traffic.bytes_H[rows]
