"""Seeded synthetic routing statistics for any model shape: the embedded default.

Three knobs, each in [0, ...) with a plain meaning; each is one number for every layer or one per layer
(`skew` and `coact` per MoE layer [L], `affinity` per transition [L-1], the one into layer l at l-1):

    skew      load imbalance: expert popularity at each layer is exp(skew * z), z ~ N(0, 1); 0 is uniform.
    coact     within-layer structure: experts form clusters of `cluster_size`; each secondary choice is
              drawn from the primary's cluster with probability `coact` (else from the whole layer).
    affinity  layer-to-layer structure: each layer l has a fixed successor map pi_l (a permutation); the
              j-th choice at layer l+1 is pi_l(j-th choice at layer l) with probability `affinity`.

Choices are made without replacement in gate order (primary first) by Gumbel-max sampling over the load
weights, so the statistics are those of real top-k routing (k distinct experts per token and layer). The
clusters move with the successor maps, so co-activation and affinity agree across layers as in real models.
Per-layer knobs are what `moeplace stats synth --like` fits to a real trace (moeplace.traces.fit).

The structure (popularity, successor maps, clusters) comes from `seed`; the token paths come from the same
stream unless `path_seed` is given, in which case from a separate stream seeded by (seed, path_seed): the
same workload, other tokens, i.e. held-out traffic (benchmarks/solver_quality.py plans on the default
sample and scores on path_seed=1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moeplace.errors import InputError
from moeplace.traces.stats import RoutingStats

DEFAULT_SKEW = 0.35
DEFAULT_COACT = 0.3
DEFAULT_AFFINITY = 0.5
DEFAULT_TOKENS = 8192

Knob = float | Sequence[float] | np.ndarray


def knob_array(name: str, value: Knob, n: int, *, probability: bool) -> np.ndarray:
    """A knob as float64 [n], validated: finite, >= 0, and <= 1 for probabilities."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise InputError(f"needs one value or {n} (one per {'transition' if name == 'affinity' else 'layer'}), "
                         f"got {arr.shape[0] if arr.ndim == 1 else arr.shape}", field=name)
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        raise InputError(f"must be a finite number >= 0, got {arr[bad][0]}", field=name)
    if probability and (arr > 1).any():
        raise InputError(f"is a probability, got {arr[arr > 1][0]} (expected 0..1)", field=name)
    return arr


def synthesize_paths(num_moe_layers: int, num_experts: int, top_k: int, *, num_tokens: int = DEFAULT_TOKENS,
                     skew: Knob = DEFAULT_SKEW, coact: Knob = DEFAULT_COACT, affinity: Knob = DEFAULT_AFFINITY,
                     cluster_size: int = 4, seed: int = 0, path_seed: int | None = None) -> np.ndarray:
    """Token paths int32 [num_tokens, num_moe_layers, top_k], experts in gate order.

    path_seed: None draws the paths from the structure's stream; an integer from a separate one (held out).
    """
    L, E, k, T = num_moe_layers, num_experts, top_k, num_tokens
    skew_L = knob_array("skew", skew, L, probability=False)
    coact_L = knob_array("coact", coact, L, probability=True)
    aff_L1 = knob_array("affinity", affinity, max(L - 1, 1) if np.ndim(affinity) == 0 else L - 1, probability=True)
    if T <= 0:
        raise InputError(f"must be positive, got {T}", field="num_tokens")
    if k > E:
        raise InputError(f"top_k={k} exceeds num_experts={E}", field="top_k")
    if cluster_size < 1:
        raise InputError(f"must be >= 1, got {cluster_size}", field="cluster_size")
    rng = np.random.default_rng(seed)
    log_w_LE = skew_L[:, None] * rng.standard_normal((L, E))
    succ = np.stack([rng.permutation(E) for _ in range(max(L - 1, 1))])
    cluster_LE = np.empty((L, E), dtype=np.int64)
    cluster_LE[0] = rng.permutation(E) // max(1, cluster_size)
    for li in range(1, L):
        cluster_LE[li, succ[li - 1]] = cluster_LE[li - 1]
    if path_seed is not None:
        rng = np.random.default_rng((seed, path_seed))
    paths = np.empty((T, L, k), dtype=np.int32)
    rows = np.arange(T)
    for li in range(L):
        taken = np.zeros((T, E), dtype=bool)
        for j in range(k):
            logits = log_w_LE[li][None, :] + rng.gumbel(size=(T, E))
            free = np.where(taken, -np.inf, logits)
            pick = np.argmax(free, axis=1)
            if j > 0 and coact_L[li] > 0:
                same = cluster_LE[li][None, :] == cluster_LE[li][paths[:, li, 0]][:, None]
                in_cluster = np.where(same & ~taken, logits, -np.inf)
                has = np.isfinite(in_cluster).any(axis=1)
                use = has & (rng.random(T) < coact_L[li])
                pick = np.where(use, np.argmax(in_cluster, axis=1), pick)
            if li > 0 and aff_L1[li - 1] > 0:
                forced = succ[li - 1][paths[:, li - 1, j]]
                use = (rng.random(T) < aff_L1[li - 1]) & ~taken[rows, forced]
                pick = np.where(use, forced, pick)
            paths[:, li, j] = pick
            taken[rows, pick] = True
    return paths


def _plain(value: Knob) -> float | list[float]:
    arr = np.asarray(value, dtype=float)
    return float(arr) if arr.ndim == 0 else [float(x) for x in arr]


def synthesize(num_moe_layers: int, num_experts: int, top_k: int, *, num_tokens: int = DEFAULT_TOKENS,
               skew: Knob = DEFAULT_SKEW, coact: Knob = DEFAULT_COACT, affinity: Knob = DEFAULT_AFFINITY,
               cluster_size: int = 4, seed: int = 0, layer_numbers: tuple[int, ...] | None = None,
               provenance: dict | None = None, path_seed: int | None = None) -> RoutingStats:
    """Synthetic `RoutingStats` (all sampled paths kept) with the knobs recorded in the provenance.

    `provenance` adds entries (e.g. the profile a fit came from); the knobs are always recorded, so that
    `moeplace evaluate` can regenerate the statistics a plan was made from.
    """
    paths = synthesize_paths(num_moe_layers, num_experts, top_k, num_tokens=num_tokens, skew=skew, coact=coact,
                             affinity=affinity, cluster_size=cluster_size, seed=seed, path_seed=path_seed)
    prov = dict(provenance or {})
    if path_seed is not None:
        prov["path_seed"] = path_seed
    prov.update({"source": "synthetic", "skew": _plain(skew), "coact": _plain(coact), "affinity": _plain(affinity),
                 "cluster_size": cluster_size, "seed": seed, "num_tokens": num_tokens})
    return RoutingStats.from_paths(paths, num_experts, layer_numbers=layer_numbers, provenance=prov,
                                   keep_paths=None)
