"""Replicas of hot experts: which experts get copies, how items are numbered, and the traffic over copies.

With one expert per GPU, a layer's stage runs at the pace of its hottest expert; only copies fix that.
Given R spare GPUs, `choose_copies` gives copies one at a time to the expert with the highest load per copy
(water-filling, as DeepSeek's EPLB does per layer, here across all layers because the slowest stage sets
the pipeline's pace): the result minimises the largest load per copy over the whole model. Tokens split
evenly between an expert's copies, each token choosing one copy independently, so the expected traffic is
linear in the placement and the one objective stays exact.

Item numbering: items 0..I-1 are the experts themselves (replica 0, item = moe_layer x E + expert), items
I.. the extra copies in (moe_layer, expert, replica) order.
"""

from __future__ import annotations

import heapq

import numpy as np

from moeplace.errors import InputError
from moeplace.placement.traffic import PAD, Traffic, aggregate


def choose_copies(load_LE: np.ndarray, num_extra: int) -> np.ndarray:
    """int [L, E] copies per expert (>= 1) after handing out `num_extra` copies by highest load per copy."""
    L, E = load_LE.shape
    copies = np.ones((L, E), dtype=np.int64)
    if num_extra < 0:
        raise InputError(f"must be >= 0, got {num_extra}", field="--replicas")
    heap = [(-float(load_LE[l, e]), l * E + e) for l in range(L) for e in range(E)]
    heapq.heapify(heap)
    for _ in range(num_extra):
        _, item = heapq.heappop(heap)
        l, e = divmod(item, E)
        copies[l, e] += 1
        heapq.heappush(heap, (-float(load_LE[l, e]) / copies[l, e], item))
    return copies


def item_table(copies_LE: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(base item, replica index) of every item: int [items] each; base items first, then extra copies."""
    L, E = copies_LE.shape
    base = list(range(L * E))
    replica = [0] * (L * E)
    for item, c in enumerate(copies_LE.ravel().tolist()):
        for r in range(1, c):
            base.append(item)
            replica.append(r)
    return np.asarray(base, dtype=np.int64), np.asarray(replica, dtype=np.int64)


def copies_of(item_base_I: np.ndarray, num_base: int) -> list[np.ndarray]:
    """For every base item, the items that are its copies (itself first)."""
    order = np.argsort(item_base_I, kind="stable")
    bounds = np.searchsorted(item_base_I[order], np.arange(num_base + 1))
    return [order[bounds[b]:bounds[b + 1]] for b in range(num_base)]


def expand_traffic(traffic: Traffic, item_base_I: np.ndarray) -> Traffic:
    """Traffic over items with copies: every member of a hyperedge with c copies becomes each copy with 1/c
    of the bytes, independently per member (a token picks one copy of each expert it chose)."""
    num_base = traffic.num_items
    if item_base_I.size == num_base:
        return traffic
    groups = copies_of(item_base_I, num_base)
    counts = np.asarray([g.size for g in groups], dtype=np.int64)
    flat = np.concatenate(groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    members = np.concatenate([traffic.src_H[:, None], traffic.dst_HK], axis=1).astype(np.int64)
    nbytes = traffic.bytes_H.astype(np.float64)
    kind = traffic.kind_H
    for col in range(members.shape[1]):
        m = members[:, col]
        c = np.where(m >= 0, counts[np.maximum(m, 0)], 1)
        rows = np.repeat(np.arange(m.size), c)
        offset = np.arange(rows.size) - np.repeat(np.cumsum(c) - c, c)
        members = members[rows]
        nbytes = nbytes[rows] / c[rows]
        kind = kind[rows]
        mm = members[:, col]
        members[:, col] = np.where(mm >= 0, flat[starts[np.maximum(mm, 0)] + offset], mm)
    src, dst = members[:, 0], members[:, 1:]
    dst = np.where(dst < 0, PAD, dst)
    return aggregate(src, dst, nbytes, kind, traffic.kinds, int(item_base_I.size))
