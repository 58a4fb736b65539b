"""Counting kernels: token paths -> the count arrays of `RoutingStats` (pure numpy, no imports from moeplace).

Shapes (N tokens, L layers, E experts, k top-k):

    paths_NLK    int [N, L, k]  experts in gate order (primary first)
    present_NL   bool [N, L]    the token has a record at layer l (None: every token at every layer)

A token absent at a layer adds nothing there; a transition l -> l+1 counts only tokens present at both
layers, and `trans_dropped_L1` counts those present at exactly one of the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MASK64 = (1 << 64) - 1


@dataclass(frozen=True, eq=False)
class Counts:
    load_LE: np.ndarray
    coact_LEE: np.ndarray
    trans_LEE: np.ndarray
    trans_primary_LEE: np.ndarray
    tokens_L: np.ndarray
    trans_tokens_L1: np.ndarray
    trans_dropped_L1: np.ndarray


def zero_counts(L: int, E: int) -> Counts:
    Lt = max(L - 1, 0)
    return Counts(np.zeros((L, E), np.int64), np.zeros((L, E, E), np.int64), np.zeros((Lt, E, E), np.int64),
                  np.zeros((Lt, E, E), np.int64), np.zeros(L, np.int64), np.zeros(Lt, np.int64),
                  np.zeros(Lt, np.int64))


def add_counts(a: Counts, b: Counts) -> Counts:
    return Counts(*(x + y for x, y in zip(_fields(a), _fields(b))))


def add_into(a: Counts, b: Counts) -> None:
    """a += b in place (the accumulator's arrays are its own)."""
    for x, y in zip(_fields(a), _fields(b)):
        np.add(x, y, out=x)


def _fields(c: Counts) -> tuple[np.ndarray, ...]:
    return (c.load_LE, c.coact_LEE, c.trans_LEE, c.trans_primary_LEE, c.tokens_L, c.trans_tokens_L1,
            c.trans_dropped_L1)


def count_paths(paths_NLK: np.ndarray, num_experts: int, present_NL: np.ndarray | None = None) -> Counts:
    """Counts of N token paths; ids must already be validated (0 <= id < E, distinct within a row)."""
    N, L, k = paths_NLK.shape
    E = int(num_experts)
    Lt = max(L - 1, 0)
    if N == 0:
        return zero_counts(L, E)
    dt = np.int32 if L * E * E < 2**31 else np.int64
    q = paths_NLK.astype(dt, copy=False)
    base = np.arange(L, dtype=dt)[None, :, None] * E + q                  # [N, L, k]: layer * E + expert
    if present_NL is None or present_NL.all():
        present_NL = np.ones((N, L), dtype=bool)
        at, nxt, src = base, q[:, 1:], base[:, :-1] * E
    else:
        both = present_NL[:, :-1] & present_NL[:, 1:]
        at, nxt, src = base[present_NL], q[:, 1:][both], (base[:, :-1] * E)[both]
    load = np.bincount(at.ravel(), minlength=L * E).reshape(L, E)
    coact = np.zeros((L, E, E), np.int64)
    if k > 1:
        iu, ju = np.triu_indices(k, 1)
        co_q = q[present_NL] if at.ndim == 2 else q
        upper = np.bincount((at[..., iu] * E + co_q[..., ju]).ravel(), minlength=L * E * E).reshape(L, E, E)
        coact = upper + upper.transpose(0, 2, 1)
    trans = np.zeros((Lt, E, E), np.int64)
    trans_p = np.zeros((Lt, E, E), np.int64)
    if Lt > 0:
        trans_p = np.bincount((src[..., 0, None] + nxt).ravel(), minlength=Lt * E * E).reshape(Lt, E, E)
        trans = np.bincount((src[..., :, None] + nxt[..., None, :]).ravel(), minlength=Lt * E * E).reshape(Lt, E, E)
    return Counts(load_LE=load.astype(np.int64), coact_LEE=coact.astype(np.int64), trans_LEE=trans.astype(np.int64),
                  trans_primary_LEE=trans_p.astype(np.int64), tokens_L=present_NL.sum(axis=0).astype(np.int64),
                  trans_tokens_L1=(present_NL[:, :-1] & present_NL[:, 1:]).sum(axis=0).astype(np.int64),
                  trans_dropped_L1=(present_NL[:, :-1] ^ present_NL[:, 1:]).sum(axis=0).astype(np.int64))


def count_layer_rows(rows_NK: np.ndarray, layer: int, num_layers: int, num_experts: int) -> Counts:
    """Counts of rows seen at one layer only (their transitions cannot be counted)."""
    N, k = rows_NK.shape
    paths = np.zeros((N, num_layers, k), np.int64)
    paths[:, layer] = rows_NK
    present = np.zeros((N, num_layers), bool)
    present[:, layer] = True
    return count_paths(paths, num_experts, present)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer over uint64 (wrapping arithmetic): a fixed, portable hash for sample keys."""
    z = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def sample_keys(salt: int, positions: np.ndarray) -> np.ndarray:
    """Sample priority of each token: a hash of (file salt, position of its first record in the file)."""
    pos = np.asarray(positions, dtype=np.int64).astype(np.uint64)
    return splitmix64(pos ^ np.uint64(salt & MASK64))


def duplicate_rows(rows_NK: np.ndarray) -> np.ndarray:
    """bool [N]: the row names one expert twice."""
    k = rows_NK.shape[1]
    if k <= 8:  # the usual top-k: k^2/2 vector compares beat a sort
        dup = np.zeros(rows_NK.shape[0], bool)
        for i in range(k):
            for j in range(i + 1, k):
                dup |= rows_NK[:, i] == rows_NK[:, j]
        return dup
    s = np.sort(rows_NK, axis=1)  # O(N k log k) for wide rows
    return (s[:, 1:] == s[:, :-1]).any(axis=1)
