"""Routing statistics: what the tokens of a workload do at every MoE layer, and the `.npz` file format.

Arrays (L = MoE layers, E = experts per MoE layer, k = top-k, T = sampled tokens):

    load_LE            int64 [L, E]      tokens that chose expert e at MoE layer l
    coact_LEE          int64 [L, E, E]   tokens that chose both e and f at layer l (symmetric, zero diagonal)
    trans_LEE          int64 [L-1, E, E] tokens that chose e at layer l and f at layer l+1 (all k x k pairs)
    trans_primary_LEE  int64 [L-1, E, E] as trans, with e the token's highest-gate expert at layer l
    paths_TLK          int32 [T, L, k]   optional sample of whole token paths, experts in gate order

Pairwise counts cannot express node-level dedup (one network crossing for two experts on one remote node),
so the statistics keep a sample of token paths; flow models build the exact expected objective from it and
fall back to the pairwise counts when a file has none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moeplace.errors import InputError

FORMAT_VERSION = 1
_REQUIRED = ("format_version", "load", "coact", "trans", "trans_primary", "num_tokens", "top_k", "layers")


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

    def __post_init__(self) -> None:
        L, E = self.load_LE.shape
        assert self.coact_LEE.shape == (L, E, E), self.coact_LEE.shape
        assert self.trans_LEE.shape == (max(L - 1, 0), E, E), self.trans_LEE.shape
        assert self.trans_primary_LEE.shape == self.trans_LEE.shape
        assert len(self.layer_numbers) == L
        if self.paths_TLK is not None:
            assert self.paths_TLK.ndim == 3 and self.paths_TLK.shape[1:] == (L, self.top_k), self.paths_TLK.shape
        for arr in (self.load_LE, self.coact_LEE, self.trans_LEE, self.trans_primary_LEE, self.paths_TLK):
            if arr is not None:
                arr.setflags(write=False)

    @property
    def num_moe_layers(self) -> int:
        return int(self.load_LE.shape[0])

    @property
    def num_experts(self) -> int:
        return int(self.load_LE.shape[1])

    @classmethod
    def from_paths(cls, paths_TLK: np.ndarray, num_experts: int, *, layer_numbers: tuple[int, ...] | None = None,
                   provenance: dict | None = None, keep_paths: int | None = 65536,
                   rng_seed: int = 0) -> RoutingStats:
        """Aggregate token paths (experts in gate order) into statistics.

        keep_paths: how many paths to keep as the sample for the dedup objective (None keeps all); the
        sample is a seeded random subset, so the same input gives the same file.
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
        p = paths.astype(np.int64)
        load = np.stack([np.bincount(p[:, l, :].ravel(), minlength=E) for l in range(L)])
        coact = np.zeros((L, E, E), dtype=np.int64)
        for i in range(k):
            for j in range(k):
                if i != j:
                    idx = (np.arange(L)[None, :] * E + p[:, :, i]) * E + p[:, :, j]
                    coact += np.bincount(idx.ravel(), minlength=L * E * E).reshape(L, E, E)
        trans = np.zeros((max(L - 1, 0), E, E), dtype=np.int64)
        trans_p = np.zeros_like(trans)
        if L > 1:
            lay = np.arange(L - 1)[None, :]
            for i in range(k):
                for j in range(k):
                    idx = (lay * E + p[:, :-1, i]) * E + p[:, 1:, j]
                    counts = np.bincount(idx.ravel(), minlength=(L - 1) * E * E).reshape(L - 1, E, E)
                    trans += counts
                    if i == 0:
                        trans_p += counts
        sample = paths.astype(np.int32)
        if keep_paths is not None and T > keep_paths:
            rng = np.random.default_rng(rng_seed)
            sample = sample[np.sort(rng.choice(T, size=keep_paths, replace=False))]
        return cls(load_LE=load, coact_LEE=coact, trans_LEE=trans, trans_primary_LEE=trans_p, num_tokens=T,
                   top_k=k, layer_numbers=tuple(layer_numbers) if layer_numbers else tuple(range(L)),
                   paths_TLK=sample, provenance=dict(provenance or {}))

    def save(self, path: str | Path) -> None:
        """Write the `.npz` format (no pickles: every array is numeric or a unicode string)."""
        import io

        from moeplace.fileio import write_bytes

        arrays = {
            "format_version": np.int64(FORMAT_VERSION),
            "load": self.load_LE, "coact": self.coact_LEE, "trans": self.trans_LEE,
            "trans_primary": self.trans_primary_LEE, "num_tokens": np.int64(self.num_tokens),
            "top_k": np.int64(self.top_k), "layers": np.asarray(self.layer_numbers, dtype=np.int64),
            "provenance": np.str_(json.dumps(self.provenance, sort_keys=True)),
        }
        if self.paths_TLK is not None:
            arrays["paths"] = self.paths_TLK
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> RoutingStats:
        p = Path(path)
        if not p.is_file():
            raise InputError("file not found", source=str(p))
        try:
            with np.load(p, allow_pickle=False) as z:
                data = {key: z[key] for key in z.files}
        except ValueError as exc:
            if "pickle" in str(exc).lower():
                raise InputError("holds pickled objects, which moeplace never loads", source=str(p)) from None
            raise InputError(f"not a readable .npz ({exc})", source=str(p)) from None
        except Exception as exc:  # zipfile.BadZipFile, EOFError, OSError on truncated files
            raise InputError(f"not a readable .npz ({type(exc).__name__}: {exc})", source=str(p)) from None
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise InputError(f"missing array(s) {', '.join(missing)} (is this a moeplace statistics file?)",
                             source=str(p))
        version = int(data["format_version"])
        if version != FORMAT_VERSION:
            raise InputError(f"format_version {version} is not supported (expected {FORMAT_VERSION})",
                             source=str(p), field="format_version")
        load = data["load"]
        if load.ndim != 2:
            raise InputError(f"must be [layers, experts], got shape {load.shape}", source=str(p), field="load")
        L, E = load.shape
        shapes = {"coact": (L, E, E), "trans": (max(L - 1, 0), E, E), "trans_primary": (max(L - 1, 0), E, E)}
        for key, shape in shapes.items():
            if data[key].shape != shape:
                raise InputError(f"shape {data[key].shape} does not match load's {L} layers x {E} experts "
                                 f"(expected {shape})", source=str(p), field=key)
        for key in ("load", "coact", "trans", "trans_primary"):
            if data[key].size and data[key].min() < 0:
                raise InputError(f"negative count {data[key].min()}", source=str(p), field=key)
        top_k = int(data["top_k"])
        paths = data.get("paths")
        if paths is not None:
            if paths.ndim != 3 or paths.shape[1:] != (L, top_k):
                raise InputError(f"shape {paths.shape} does not match [tokens, {L}, {top_k}]", source=str(p),
                                 field="paths")
            if paths.size and (paths.min() < 0 or paths.max() >= E):
                raise InputError(f"expert id {int(paths.max())} outside 0..{E - 1}", source=str(p), field="paths")
        try:
            provenance = json.loads(str(data.get("provenance", "{}")))
        except json.JSONDecodeError:
            provenance = {}
        layers = tuple(int(x) for x in data["layers"])
        if len(layers) != L:
            raise InputError(f"{len(layers)} layer numbers for {L} layers", source=str(p), field="layers")
        return cls(load_LE=load.astype(np.int64), coact_LEE=data["coact"].astype(np.int64),
                   trans_LEE=data["trans"].astype(np.int64), trans_primary_LEE=data["trans_primary"].astype(np.int64),
                   num_tokens=int(data["num_tokens"]), top_k=top_k, layer_numbers=layers,
                   paths_TLK=None if paths is None else paths.astype(np.int32), provenance=provenance)

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
