"""Streaming aggregation: token paths in, `RoutingStats` out, in bounded memory.

An `Accumulator` adds counts chunk by chunk and keeps the path sample as the bottom-`keep_paths` tokens by a
64-bit key (a hash of the file's salt and the token's position in the file), so that the sample is the same
whatever the chunking or the number of worker processes, and two accumulators merge exactly.
"""

from __future__ import annotations

import numpy as np

from moeplace.traces.kernels import Counts, add_into, count_layer_rows, count_paths, zero_counts
from moeplace.traces.limits import check_shape
from moeplace.traces.stats import PARTS, RoutingStats, bottom_k


class Accumulator:
    """Counts of one trace. `add_tokens` for token paths, `add_layer_rows` for rows that cannot be aligned."""

    def __init__(self, layer_numbers: tuple[int, ...], num_experts: int, top_k: int, keep_paths: int | None,
                 source: str | None = None):
        check_shape(len(layer_numbers), int(num_experts), int(top_k), source)  # before the count arrays exist
        self.layer_numbers = tuple(layer_numbers)
        self.num_experts = int(num_experts)
        self.top_k = int(top_k)
        self.keep_paths = keep_paths
        self.counts: Counts = zero_counts(len(self.layer_numbers), self.num_experts)
        self.num_tokens = 0
        self.dropped: dict[str, int] = {}
        self._paths: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []
        self._order: list[np.ndarray] = []
        self._held = 0

    @property
    def num_layers(self) -> int:
        return len(self.layer_numbers)

    def drop(self, reason: str, n: int) -> None:
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + int(n)

    def add_tokens(self, paths_NLK: np.ndarray, keys_N: np.ndarray, order_N: np.ndarray,
                   present_NL: np.ndarray | None = None) -> None:
        """Tokens with validated ids; those present at every layer join the path sample."""
        if paths_NLK.shape[0] == 0:
            return
        add_into(self.counts, count_paths(paths_NLK, self.num_experts, present_NL))
        self.num_tokens += int(paths_NLK.shape[0])
        full = slice(None) if present_NL is None else present_NL.all(axis=1)
        self._hold(paths_NLK[full], keys_N[full], order_N[full])

    def add_layer_rows(self, layer: int, rows_NK: np.ndarray, *, new_tokens: bool) -> None:
        """Rows seen at one layer whose tokens cannot be followed to the next layer (misaligned blocks)."""
        if rows_NK.shape[0] == 0:
            return
        add_into(self.counts, count_layer_rows(rows_NK, layer, self.num_layers, self.num_experts))
        if new_tokens:
            self.num_tokens += int(rows_NK.shape[0])

    def _hold(self, paths: np.ndarray, keys: np.ndarray, order: np.ndarray) -> None:
        if paths.shape[0] == 0:
            return
        self._paths.append(paths.astype(np.int32))
        self._keys.append(np.asarray(keys, np.uint64))
        self._order.append(np.asarray(order, np.int64))
        self._held += paths.shape[0]
        if self.keep_paths is not None and self._held > 2 * max(self.keep_paths, 1024):
            self._prune()

    def _prune(self) -> None:
        paths, keys, order = self.sample()
        self._paths, self._keys, self._order, self._held = [paths], [keys], [order], paths.shape[0]

    def sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The kept paths [T, L, k], their keys and positions, sorted by position in the file."""
        L, k = self.num_layers, self.top_k
        if not self._paths:
            return np.zeros((0, L, k), np.int32), np.zeros(0, np.uint64), np.zeros(0, np.int64)
        paths, keys, order = (np.concatenate(x) for x in (self._paths, self._keys, self._order))
        sel = bottom_k(keys, self.keep_paths)
        paths, keys, order = paths[sel], keys[sel], order[sel]
        by = np.argsort(order, kind="stable")
        return paths[by], keys[by], order[by]

    def absorb(self, other: Accumulator) -> None:
        """Add another accumulator of the same trace (a worker's share)."""
        add_into(self.counts, other.counts)
        self.num_tokens += other.num_tokens
        for reason, n in other.dropped.items():
            self.drop(reason, n)
        for p, k_, o in zip(other._paths, other._keys, other._order):
            self._hold(p, k_, o)

    def state(self) -> tuple:
        """A picklable snapshot (for worker processes); `from_state` rebuilds it."""
        paths, keys, order = self.sample()
        return (self.layer_numbers, self.num_experts, self.top_k, self.keep_paths, self.counts, self.num_tokens,
                dict(self.dropped), paths, keys, order)

    @classmethod
    def from_state(cls, state: tuple) -> Accumulator:
        layers, E, k, keep, counts, n, dropped, paths, keys, order = state
        acc = cls(layers, E, k, keep)
        add_into(acc.counts, counts)
        acc.num_tokens, acc.dropped = n, dropped
        acc._hold(paths, keys, order)
        return acc

    def finish(self, provenance: dict, *, measured: tuple[str, ...] = PARTS) -> RoutingStats:
        paths, keys, _ = self.sample()
        c = Counts(*(x.copy() for x in (self.counts.load_LE, self.counts.coact_LEE, self.counts.trans_LEE,
                                         self.counts.trans_primary_LEE, self.counts.tokens_L,
                                         self.counts.trans_tokens_L1, self.counts.trans_dropped_L1)))
        return RoutingStats(load_LE=c.load_LE, coact_LEE=c.coact_LEE, trans_LEE=c.trans_LEE,
                            trans_primary_LEE=c.trans_primary_LEE, num_tokens=self.num_tokens, top_k=self.top_k,
                            layer_numbers=self.layer_numbers, paths_TLK=paths if paths.shape[0] else None,
                            paths_key_T=keys if paths.shape[0] else None, provenance=dict(provenance),
                            tokens_L=c.tokens_L, trans_tokens_L1=c.trans_tokens_L1, trans_dropped_L1=c.trans_dropped_L1,
                            dropped_records=dict(sorted(self.dropped.items())), measured=measured,
                            keep_paths=self.keep_paths)
