"""Routing statistics: what the tokens of a workload do at every MoE layer, and the `.npz` file format.

Arrays (L = MoE layers, E = experts per MoE layer, k = top-k, T = sampled tokens):

    load_LE            int64 [L, E]      tokens that chose expert e at MoE layer l
    coact_LEE          int64 [L, E, E]   tokens that chose both e and f at layer l (symmetric, zero diagonal)
    trans_LEE          int64 [L-1, E, E] tokens that chose e at layer l and f at layer l+1 (all k x k pairs)
    trans_primary_LEE  int64 [L-1, E, E] as trans, with e the token's highest-gate expert at layer l
    paths_TLK          int32 [T, L, k]   optional sample of whole token paths, experts in gate order
    paths_key_T        uint64 [T]        the sample's priorities (bottom-k sampling, so samples merge exactly)
    tokens_L           int64 [L]         tokens present at layer l (a trace may miss a token's record)
    trans_tokens_L1    int64 [L-1]       tokens present at both l and l+1: the tokens `trans` counts
    trans_dropped_L1   int64 [L-1]       records at l or l+1 with no partner at the other layer (the token is
                                         missing there, or its rows could not be aligned): left out of `trans`

`measured` names the count arrays that were measured (a load-only dump has zeros elsewhere), and
`trans_pairing` says how `trans` pairs a token's experts: "all" (k x k pairs) or "rank" (the r-th choice at
l with the r-th at the next layer: the OLMoE routing counts). Statistics are mergeable: `a + b` adds the
counts and keeps the bottom-k sample of both, equal to building from both traces at once.

Pairwise counts cannot express node-level dedup (one network crossing for two experts on one remote node),
so the statistics keep a sample of token paths; flow models build the exact expected objective from it and
fall back to the pairwise counts when a file has none. The `.npz` layout is in docs/stats-format.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moeplace.errors import InputError
from moeplace.traces.kernels import count_paths, sample_keys

FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
PARTS = ("load", "coact", "trans", "trans_primary")
REQUIRED_KEYS = ("format_version", "load", "coact", "trans", "trans_primary", "num_tokens", "top_k", "layers")


@dataclass(frozen=True, eq=False)
class RoutingStats:
    load_LE: np.ndarray
    coact_LEE: np.ndarray
    trans_LEE: np.ndarray
    trans_primary_LEE: np.ndarray
    num_tokens: int
    top_k: int
    layer_numbers: tuple[int, ...]
    paths_TLK: np.ndarray | None = None
    provenance: dict = field(default_factory=dict)
    paths_key_T: np.ndarray | None = None
    tokens_L: np.ndarray | None = None
    trans_tokens_L1: np.ndarray | None = None
    trans_dropped_L1: np.ndarray | None = None
    dropped_records: dict = field(default_factory=dict)
    measured: tuple[str, ...] = PARTS
    trans_pairing: str = "all"
    keep_paths: int | None = None

    def __post_init__(self) -> None:
        L, E = self.load_LE.shape
        Lt = max(L - 1, 0)
        assert self.coact_LEE.shape == (L, E, E), self.coact_LEE.shape
        assert self.trans_LEE.shape == (Lt, E, E), self.trans_LEE.shape
        assert self.trans_primary_LEE.shape == self.trans_LEE.shape
        assert len(self.layer_numbers) == L
        assert set(self.measured) <= set(PARTS) and "load" in self.measured, self.measured
        assert self.trans_pairing in ("all", "rank"), self.trans_pairing
        if self.paths_TLK is not None:
            assert self.paths_TLK.ndim == 3 and self.paths_TLK.shape[1:] == (L, self.top_k), self.paths_TLK.shape
            if self.paths_key_T is None:
                object.__setattr__(self, "paths_key_T", sample_keys(0, np.arange(self.paths_TLK.shape[0])))
            assert self.paths_key_T.shape == (self.paths_TLK.shape[0],)
        defaults = {"tokens_L": np.full(L, self.num_tokens, np.int64),
                    "trans_tokens_L1": np.full(Lt, self.num_tokens, np.int64),
                    "trans_dropped_L1": np.zeros(Lt, np.int64)}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        assert self.tokens_L.shape == (L,) and self.trans_tokens_L1.shape == (Lt,) == self.trans_dropped_L1.shape
        for arr in (self.load_LE, self.coact_LEE, self.trans_LEE, self.trans_primary_LEE, self.paths_TLK,
                    self.paths_key_T, self.tokens_L, self.trans_tokens_L1, self.trans_dropped_L1):
            if arr is not None:
                arr.setflags(write=False)

    @property
    def num_moe_layers(self) -> int:
        return int(self.load_LE.shape[0])

    @property
    def num_experts(self) -> int:
        return int(self.load_LE.shape[1])

    def has(self, part: str) -> bool:
        """Whether a count array was measured (`load`, `coact`, `trans`, `trans_primary`) or `paths` sampled."""
        if part == "paths":
            return self.paths_TLK is not None and self.paths_TLK.shape[0] > 0
        return part in self.measured

    @classmethod
    def from_paths(cls, paths_TLK: np.ndarray, num_experts: int, *, layer_numbers: tuple[int, ...] | None = None,
                   provenance: dict | None = None, keep_paths: int | None = 65536,
                   rng_seed: int = 0) -> RoutingStats:
        """Aggregate token paths (experts in gate order) into statistics.

        keep_paths: how many paths to keep as the sample for the dedup objective (None keeps all); the sample
        is the bottom-`keep_paths` by a hash of (rng_seed, row), so the same input gives the same file.
        """
        paths = np.asarray(paths_TLK)
        if paths.ndim != 3:
            raise InputError(f"token paths must be [tokens, layers, k], got shape {paths.shape}", field="topk")
        T, L, k = paths.shape
        if T == 0:
            raise InputError("no tokens", field="topk")
        E = int(num_experts)
        if paths.min() < 0 or paths.max() >= E:
            bad = int(paths.max()) if paths.max() >= E else int(paths.min())
            raise InputError(f"expert id {bad} outside 0..{E - 1}", field="topk")
        c = count_paths(paths, E)
        keys = sample_keys(rng_seed, np.arange(T))
        keep = bottom_k(keys, keep_paths)
        return cls(load_LE=c.load_LE, coact_LEE=c.coact_LEE, trans_LEE=c.trans_LEE,
                   trans_primary_LEE=c.trans_primary_LEE, num_tokens=T, top_k=k,
                   layer_numbers=tuple(layer_numbers) if layer_numbers else tuple(range(L)),
                   paths_TLK=paths[keep].astype(np.int32), paths_key_T=keys[keep], provenance=dict(provenance or {}),
                   tokens_L=c.tokens_L, trans_tokens_L1=c.trans_tokens_L1, trans_dropped_L1=c.trans_dropped_L1,
                   keep_paths=keep_paths)

    def with_provenance(self, provenance: dict) -> RoutingStats:
        import dataclasses

        return dataclasses.replace(self, provenance=dict(provenance))

    def __add__(self, other: RoutingStats) -> RoutingStats:
        from moeplace.traces.statsfile import merge

        return merge(self, other)

    def save(self, path: str | Path) -> None:
        """Write the `.npz` format (no pickles: every array is numeric or a unicode string)."""
        from moeplace.traces.statsfile import save_stats

        save_stats(self, path)

    @classmethod
    def load(cls, path: str | Path) -> RoutingStats:
        from moeplace.traces.statsfile import load_stats_file

        return load_stats_file(path)

    def check_model(self, num_moe_layers: int, num_experts: int, top_k: int, source: str) -> None:
        """Refuse statistics whose shape does not match the model being planned."""
        if self.num_experts != num_experts:
            raise InputError(f"{self.num_experts} experts per layer, the model has {num_experts}", source=source,
                             field="load")
        if self.num_moe_layers != num_moe_layers:
            raise InputError(f"{self.num_moe_layers} MoE layers, the model has {num_moe_layers}", source=source,
                             field="load")
        if self.top_k != top_k:
            raise InputError(f"top_k {self.top_k}, the model has top_k {top_k}", source=source, field="top_k")

    def check_plannable(self, source: str) -> None:
        """Refuse statistics that lack what the flow models need (a load-only or co-occurrence-only dump)."""
        missing = [p for p in PARTS if p not in self.measured]
        if missing or self.trans_pairing != "all":
            what = f"no {', '.join(missing)} counts" if missing else "rank-aligned transitions"
            raise InputError(f"holds {what}; planning needs per-token traces (build the statistics from a trace "
                             f"with `moeplace stats build`, or synthesize with `moeplace stats synth --like`)",
                             source=source)


def bottom_k(keys_T: np.ndarray, keep: int | None) -> np.ndarray:
    """bool [T]: the `keep` smallest keys (ties by position), in their original order; None keeps all."""
    T = keys_T.shape[0]
    if keep is None or T <= keep:
        return np.ones(T, bool)
    mask = np.zeros(T, bool)
    mask[np.argsort(keys_T, kind="stable")[:keep]] = True
    return mask
