"""Statistics from count matrices alone (load-only dumps, co-occurrence matrices, routing-analysis counts).

Such inputs have no per-token rows, so they carry no path sample and only the counts they measured;
`RoutingStats.measured` names them, and planning refuses statistics without transitions. Token counts per
layer are recovered as load / k, which must be whole.
"""

from __future__ import annotations

import numpy as np

from moeplace.errors import InputError
from moeplace.traces.limits import MAX_COUNT, check_shape
from moeplace.traces.stats import RoutingStats


def check_counts(name: str, arr: np.ndarray, src: str) -> np.ndarray:
    a = np.asarray(arr)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise InputError(f"must hold counts, got dtype {a.dtype}", source=src, field=name)
    if a.size and not np.isfinite(a).all():
        raise InputError("holds a non-finite count", source=src, field=name)
    if a.size and a.min() < 0:
        idx = tuple(int(x) for x in np.argwhere(a == a.min())[0])
        raise InputError(f"negative count {a.min():g} at index {list(idx)}", source=src, field=name)
    if np.issubdtype(a.dtype, np.floating) and a.size and (a != np.round(a)).any():
        idx = tuple(int(x) for x in np.argwhere(a != np.round(a))[0])
        raise InputError(f"count {a[idx]:g} at index {list(idx)} is not a whole number", source=src, field=name)
    if a.size and a.max() > MAX_COUNT:
        raise InputError(f"count {a.max():g} is larger than {MAX_COUNT}", source=src, field=name)
    return a.astype(np.int64)


def tokens_from_load(load_LE: np.ndarray, top_k: int, src: str, name: str = "load") -> np.ndarray:
    total = load_LE.sum(axis=1)
    bad = np.flatnonzero(total % top_k)
    if bad.size:
        raise InputError(f"layer {int(bad[0])} counts {int(total[bad[0]])} choices, not a multiple of top_k "
                         f"{top_k} (is top_k right?)", source=src, field=name)
    return total // top_k


def stats_from_counts(load_LE: np.ndarray, *, top_k: int, layer_numbers: tuple[int, ...], src: str,
                      provenance: dict, coact_LEE: np.ndarray | None = None, trans_LEE: np.ndarray | None = None,
                      trans_primary_LEE: np.ndarray | None = None, trans_pairing: str = "all") -> RoutingStats:
    """Statistics from validated counts; absent arrays are zeros and left out of `measured`."""
    load = check_counts("load", load_LE, src)
    if load.ndim != 2:
        raise InputError(f"must be [layers, experts], got shape {load.shape}", source=src, field="load")
    L, E = load.shape
    if top_k < 1 or top_k > E:
        raise InputError(f"top_k {top_k} must be 1..{E}", source=src, field="top_k")
    check_shape(L, E, top_k, src)
    if len(layer_numbers) != L:
        raise InputError(f"{len(layer_numbers)} layer numbers for {L} layers", source=src, field="layers")
    tokens = tokens_from_load(load, top_k, src)
    measured = ["load"]
    arrays = {"coact": (coact_LEE, (L, E, E)), "trans": (trans_LEE, (max(L - 1, 0), E, E)),
              "trans_primary": (trans_primary_LEE, (max(L - 1, 0), E, E))}
    out = {}
    for name, (arr, shape) in arrays.items():
        if arr is None:
            out[name] = np.zeros(shape, np.int64)
            continue
        a = check_counts(name, arr, src)
        if a.shape != shape:
            raise InputError(f"shape {a.shape}, expected {shape} for {L} layers x {E} experts", source=src,
                             field=name)
        out[name] = a
        measured.append(name)
    coact = out["coact"]
    if "coact" in measured:
        if (np.diagonal(coact, axis1=1, axis2=2) != 0).any():
            raise InputError("diagonal must be zero (an expert is not co-activated with itself)", source=src,
                             field="coact")
        if (coact != coact.transpose(0, 2, 1)).any():
            raise InputError("must be symmetric", source=src, field="coact")
    trans_tokens = out["trans"].sum(axis=(1, 2)) // (top_k if trans_pairing == "rank" else top_k * top_k) \
        if "trans" in measured else np.minimum(tokens[:-1], tokens[1:])
    return RoutingStats(load_LE=load, coact_LEE=coact, trans_LEE=out["trans"], trans_primary_LEE=out["trans_primary"],
                        num_tokens=int(tokens.max()) if tokens.size else 0, top_k=top_k,
                        layer_numbers=tuple(layer_numbers), provenance=dict(provenance), tokens_L=tokens,
                        trans_tokens_L1=np.asarray(trans_tokens, np.int64),
                        trans_dropped_L1=np.zeros(max(L - 1, 0), np.int64),
                        measured=tuple(m for m in ("load", "coact", "trans", "trans_primary") if m in measured),
                        trans_pairing=trans_pairing, keep_paths=None)


def assume_independent(s: RoutingStats) -> tuple[RoutingStats, list[str]]:
    """Fill the count arrays a load-only (or co-occurrence-only) input did not measure with what independent
    routing would give, and name them: a token's experts drawn by load alone at every layer.

    coact[e, f] = load_e * q_f (k - 1) / (k - q_e), symmetrised (q = load / tokens, the choice probability);
    trans[e, f] = tokens * q_e * q'_f (all k x k pairs); trans_primary = trans / k. Rounded to whole counts.
    Planning from these balances load and places experts by popularity only.
    """
    import dataclasses

    from moeplace.traces.stats import PARTS

    missing = [p for p in PARTS if p not in s.measured]
    if not missing or s.trans_pairing != "all":
        return s, []
    load = s.load_LE.astype(np.float64)
    L, E = load.shape
    k = s.top_k
    T = np.maximum(s.tokens_L.astype(np.float64), 1.0)
    q = load / T[:, None]
    out = {}
    if "coact" in missing:
        c = load[:, :, None] * q[:, None, :] * (k - 1) / np.maximum(k - q[:, :, None], 1e-12)
        c = (c + c.transpose(0, 2, 1)) / 2
        c[:, np.arange(E), np.arange(E)] = 0
        out["coact_LEE"] = np.rint(c).astype(np.int64)
    if "trans" in missing or "trans_primary" in missing:
        pair = np.minimum(s.tokens_L[:-1], s.tokens_L[1:]).astype(np.float64)
        t = pair[:, None, None] * q[:-1, :, None] * q[1:, None, :]
        if "trans" in missing:
            out["trans_LEE"] = np.rint(t).astype(np.int64)
            out["trans_tokens_L1"] = pair.astype(np.int64)
        if "trans_primary" in missing:
            out["trans_primary_LEE"] = np.rint(t / k).astype(np.int64)
    prov = dict(s.provenance, assumed_independent=missing)
    return dataclasses.replace(s, measured=PARTS, provenance=prov, **out), missing
