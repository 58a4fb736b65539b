"""Traffic as weighted hyperedges between items: what a flow model produces and the objective consumes.

One hyperedge is one send of one token vector from a source to a set of targets:

    src_H     int32 [H]     source item, or HOME (-1): the token's attention GPU, uniform over all GPUs
    dst_HK    int32 [H, K]  target items, sorted, padded with PAD (-1); HOME allowed as a single target
    bytes_H   float [H]     expected bytes per token through the model (probability x token bytes)
    kind_H    int8  [H]     index into `kinds` (e.g. combine, forward), for breakdowns

A hyperedge with several targets is deduplicated by node: the vector crosses the network once per distinct
remote node and fans out over NVLink there. A flow without dedup emits one single-target hyperedge per send.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOME = -1
PAD = -1


@dataclass(frozen=True, eq=False)
class Traffic:
    src_H: np.ndarray
    dst_HK: np.ndarray
    bytes_H: np.ndarray
    kind_H: np.ndarray
    kinds: tuple[str, ...]
    num_items: int

    def __post_init__(self) -> None:
        H = self.src_H.shape[0]
        assert self.dst_HK.ndim == 2 and self.dst_HK.shape[0] == H
        assert self.bytes_H.shape == (H,) and self.kind_H.shape == (H,)
        for arr in (self.src_H, self.dst_HK, self.bytes_H, self.kind_H):
            arr.setflags(write=False)

    @property
    def num_edges(self) -> int:
        return int(self.src_H.shape[0])

    @property
    def total_bytes(self) -> float:
        """Bytes per token if every send crossed once per target (before dedup)."""
        return float((self.bytes_H * (self.dst_HK != PAD).sum(axis=1)).sum())

    def incidence(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR (indptr [items+1], edge ids) of the hyperedges each item takes part in (as source or target);
        computed once per Traffic (read-only arrays: every local search of a solve shares them)."""
        cached = self.__dict__.get("_incidence")
        if cached is None:
            cached = self._incidence_arrays()
            for a in cached:
                a.setflags(write=False)
            object.__setattr__(self, "_incidence", cached)
        return cached

    def _incidence_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        H, K = self.dst_HK.shape
        members = np.concatenate([self.src_H[:, None], self.dst_HK], axis=1)
        edge = np.repeat(np.arange(H), K + 1)
        flat = members.ravel()
        keep = flat >= 0
        flat, edge = flat[keep], edge[keep]
        if self.num_items <= np.iinfo(np.int16).max:  # a stable sort of int16 keys is a radix sort: the
            order = np.argsort(flat.astype(np.int16), kind="stable")  # (item, edge) order, edges ascending
            items, edges = flat[order].astype(np.int64), edge[order]
            first = np.ones(items.size, dtype=bool)
            first[1:] = (items[1:] != items[:-1]) | (edges[1:] != edges[:-1])  # an item twice in an edge
            items, edges = items[first], edges[first]
        else:
            pair = np.unique(flat.astype(np.int64) * H + edge)
            items, edges = pair // H, pair % H
        indptr = np.zeros(self.num_items + 1, dtype=np.int64)
        np.add.at(indptr, items + 1, 1)
        return np.cumsum(indptr), edges.astype(np.int64)


def item_sourced_targets(tr: Traffic) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(src [H'], dst [H', K], bytes [H'], valid [H', K]) of the hyperedges an item sources (not HOME), with
    `valid` marking each distinct target other than the source (a repeated target counts once)."""
    item = tr.src_H != HOME
    src, dst, w = tr.src_H[item], tr.dst_HK[item], tr.bytes_H[item]
    valid = (dst != PAD) & (dst != src[:, None])
    for j in range(1, dst.shape[1]):
        valid[:, j] &= ~((dst[:, :j] == dst[:, j:j + 1]) & valid[:, :j]).any(axis=1)
    return src, dst, w, valid


def aggregate(src: np.ndarray, dst: np.ndarray, nbytes: np.ndarray, kind: np.ndarray, kinds: tuple[str, ...],
              num_items: int) -> Traffic:
    """Merge identical (src, sorted targets, kind) hyperedges, summing their bytes; the order is canonical."""
    dst = np.sort(dst, axis=1)
    # PAD (-1) sorts first; move it to the end so that real targets lead.
    pad = dst == PAD
    order = np.argsort(pad, axis=1, kind="stable")
    dst = np.take_along_axis(dst, order, axis=1)
    rows = np.concatenate([kind[:, None].astype(np.int32), src[:, None].astype(np.int32), dst.astype(np.int32)],
                          axis=1)
    uniq, inverse = unique_rows(rows)
    summed = np.bincount(inverse.ravel(), weights=nbytes, minlength=uniq.shape[0])
    return Traffic(src_H=uniq[:, 1].copy(), dst_HK=uniq[:, 2:].copy(), bytes_H=summed,
                   kind_H=uniq[:, 0].astype(np.int8), kinds=kinds, num_items=num_items)


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(rows, axis=0, return_inverse=True)` for small non-negative-ish int rows, ~25x faster: each
    row (values >= -1) is packed into one int64 key in mixed radix, which keeps the lexicographic order."""
    shifted = rows.astype(np.int64) + 1
    base = int(shifted.max(initial=0)) + 1
    if shifted.size == 0 or shifted.min() < 0 or base ** rows.shape[1] >= 2 ** 62:
        uniq, inverse = np.unique(rows, axis=0, return_inverse=True)
        return uniq, inverse.ravel()
    key = np.zeros(rows.shape[0], dtype=np.int64)
    for c in range(rows.shape[1]):
        key = key * base + shifted[:, c]
    ukey, inverse = np.unique(key, return_inverse=True)
    uniq = np.empty((ukey.size, rows.shape[1]), dtype=np.int64)
    for c in range(rows.shape[1] - 1, -1, -1):
        uniq[:, c] = ukey % base
        ukey = ukey // base
    return (uniq - 1).astype(rows.dtype), inverse.ravel()
