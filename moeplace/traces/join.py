"""Joining per-(token, layer) records into token paths.

A record is (token id, layer index, k experts, position in the file). Records of one token are grouped by
token id; a token with a record at every layer is complete. A second record for the same (token, layer) is
a duplicate and dropped (the first in file order is kept). Incomplete tokens wait in a pool for their other
records, which may sit in the next chunk; a token whose last record is more than the window behind the
reader is closed as partial: it counts at the layers it has, and transitions only between layers it has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Records:
    token_R: np.ndarray     # int64 [R]
    layer_R: np.ndarray     # int64 [R] layer index 0..L-1
    experts_RK: np.ndarray  # int64 [R, k]
    pos_R: np.ndarray       # int64 [R] position in the file (byte offset or row)

    @property
    def size(self) -> int:
        return int(self.token_R.shape[0])

    def take(self, idx: np.ndarray) -> Records:
        return Records(self.token_R[idx], self.layer_R[idx], self.experts_RK[idx], self.pos_R[idx])

    @staticmethod
    def empty(k: int) -> Records:
        z = np.zeros(0, np.int64)
        return Records(z, z, np.zeros((0, k), np.int64), z)

    @staticmethod
    def concat(parts: list[Records]) -> Records:
        parts = [p for p in parts if p.size] or parts[:1]
        if len(parts) == 1:
            return parts[0]
        return Records(*(np.concatenate(x) for x in zip(*((p.token_R, p.layer_R, p.experts_RK, p.pos_R)
                                                          for p in parts))))


@dataclass(frozen=True, eq=False)
class Grouped:
    complete_NLK: np.ndarray   # [n, L, k]
    complete_pos_N: np.ndarray  # first position of each complete token
    rest: Records              # records of incomplete tokens, sorted by (token, layer)
    duplicates: int


def group(rec: Records, num_layers: int) -> Grouped:
    """Sort by (token, layer) keeping file order among equals, drop duplicates, split complete tokens off."""
    L = num_layers
    k = rec.experts_RK.shape[1]
    if rec.size == 0:
        return Grouped(np.zeros((0, L, k), np.int64), np.zeros(0, np.int64), rec, 0)
    tok, lay = rec.token_R, rec.layer_R
    dt = np.diff(tok)
    if not ((dt > 0) | ((dt == 0) & (np.diff(lay) > 0))).all():
        rec = rec.take(np.lexsort((lay, tok)))
        tok, lay = rec.token_R, rec.layer_R
    dup = np.zeros(rec.size, bool)
    dup[1:] = (tok[1:] == tok[:-1]) & (lay[1:] == lay[:-1])
    ndup = int(dup.sum())
    if ndup:
        rec = rec.take(~dup)
        tok = rec.token_R
    start = np.flatnonzero(np.r_[True, tok[1:] != tok[:-1]])
    size = np.diff(np.r_[start, rec.size])
    full = size == L
    if full.all():
        return Grouped(rec.experts_RK.reshape(-1, L, k), rec.pos_R.reshape(-1, L).min(axis=1),
                       Records.empty(k), ndup)
    in_full = np.repeat(full, size)
    done = rec.take(in_full)
    rest = rec.take(~in_full)
    return Grouped(done.experts_RK.reshape(-1, L, k), done.pos_R.reshape(-1, L).min(axis=1), rest, ndup)


def close(rec: Records, num_layers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Partial tokens from records sorted by (token, layer), duplicates gone: paths, present [n, L], first pos."""
    L, k = num_layers, rec.experts_RK.shape[1]
    tok = rec.token_R
    start = np.flatnonzero(np.r_[True, tok[1:] != tok[:-1]]) if rec.size else np.zeros(0, np.int64)
    n = start.shape[0]
    gid = np.repeat(np.arange(n), np.diff(np.r_[start, rec.size]))
    paths = np.zeros((n, L, k), np.int64)
    present = np.zeros((n, L), bool)
    paths[gid, rec.layer_R] = rec.experts_RK
    present[gid, rec.layer_R] = True
    first = np.full(n, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, gid, rec.pos_R)
    return paths, present, first


def split_stale(rest: Records, before: int) -> tuple[Records, Records]:
    """(stale, live): tokens whose last record lies before position `before` are stale."""
    if rest.size == 0:
        return rest, rest
    tok = rest.token_R
    start = np.flatnonzero(np.r_[True, tok[1:] != tok[:-1]])
    size = np.diff(np.r_[start, rest.size])
    last = np.maximum.reduceat(rest.pos_R, start)
    stale = np.repeat(last < before, size)
    return rest.take(stale), rest.take(~stale)
