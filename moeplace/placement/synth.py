"""Seeded synthetic routing statistics for any model shape: the embedded default.

Three knobs, each in [0, ...) with a plain meaning:

    skew      load imbalance: expert popularity at each layer is exp(skew * z), z ~ N(0, 1); 0 is uniform.
    coact     within-layer structure: experts form clusters of `cluster_size`; each secondary choice is
              drawn from the primary's cluster with probability `coact` (else from the whole layer).
    affinity  layer-to-layer structure: each layer l has a fixed successor map pi_l (a permutation); the
              j-th choice at layer l+1 is pi_l(j-th choice at layer l) with probability `affinity`.

Choices are made without replacement in gate order (primary first) by Gumbel-max sampling over the load
weights, so the statistics are those of real top-k routing (k distinct experts per token and layer). The
clusters move with the successor maps, so co-activation and affinity agree across layers as in real models.
"""

from __future__ import annotations

import numpy as np

from moeplace.errors import InputError
from moeplace.placement.stats import RoutingStats

DEFAULT_SKEW = 0.35
DEFAULT_COACT = 0.3
DEFAULT_AFFINITY = 0.5
DEFAULT_TOKENS = 8192


def synthesize_paths(num_moe_layers: int, num_experts: int, top_k: int, *, num_tokens: int = DEFAULT_TOKENS,
                     skew: float = DEFAULT_SKEW, coact: float = DEFAULT_COACT, affinity: float = DEFAULT_AFFINITY,
                     cluster_size: int = 4, seed: int = 0) -> np.ndarray:
    """Token paths int32 [num_tokens, num_moe_layers, top_k], experts in gate order."""
    L, E, k, T = num_moe_layers, num_experts, top_k, num_tokens
    for name, value in (("skew", skew), ("coact", coact), ("affinity", affinity)):
        if not np.isfinite(value) or value < 0:
            raise InputError(f"must be a finite number >= 0, got {value}", field=name)
    for name, value in (("coact", coact), ("affinity", affinity)):
        if value > 1:
            raise InputError(f"is a probability, got {value} (expected 0..1)", field=name)
    if T <= 0:
        raise InputError(f"must be positive, got {T}", field="num_tokens")
    if k > E:
        raise InputError(f"top_k={k} exceeds num_experts={E}", field="top_k")
    rng = np.random.default_rng(seed)
    log_w_LE = skew * rng.standard_normal((L, E))
    succ = np.stack([rng.permutation(E) for _ in range(max(L - 1, 1))])
    cluster_LE = np.empty((L, E), dtype=np.int64)
    cluster_LE[0] = rng.permutation(E) // max(1, cluster_size)
    for l in range(1, L):
        cluster_LE[l, succ[l - 1]] = cluster_LE[l - 1]
    paths = np.empty((T, L, k), dtype=np.int32)
    rows = np.arange(T)
    for l in range(L):
        taken = np.zeros((T, E), dtype=bool)
        for j in range(k):
            logits = log_w_LE[l][None, :] + rng.gumbel(size=(T, E))
            free = np.where(taken, -np.inf, logits)
            pick = np.argmax(free, axis=1)
            if j > 0 and coact > 0:
                same = cluster_LE[l][None, :] == cluster_LE[l][paths[:, l, 0]][:, None]
                in_cluster = np.where(same & ~taken, logits, -np.inf)
                has = np.isfinite(in_cluster).any(axis=1)
                use = has & (rng.random(T) < coact)
                pick = np.where(use, np.argmax(in_cluster, axis=1), pick)
            if l > 0 and affinity > 0:
                forced = succ[l - 1][paths[:, l - 1, j]]
                use = (rng.random(T) < affinity) & ~taken[rows, forced]
                pick = np.where(use, forced, pick)
            paths[:, l, j] = pick
            taken[rows, pick] = True
    return paths


def synthesize(num_moe_layers: int, num_experts: int, top_k: int, *, num_tokens: int = DEFAULT_TOKENS,
               skew: float = DEFAULT_SKEW, coact: float = DEFAULT_COACT, affinity: float = DEFAULT_AFFINITY,
               cluster_size: int = 4, seed: int = 0, layer_numbers: tuple[int, ...] | None = None) -> RoutingStats:
    """Synthetic `RoutingStats` (all sampled paths kept) with the knobs recorded in the provenance."""
    paths = synthesize_paths(num_moe_layers, num_experts, top_k, num_tokens=num_tokens, skew=skew, coact=coact,
                             affinity=affinity, cluster_size=cluster_size, seed=seed)
    provenance = {"source": "synthetic", "skew": skew, "coact": coact, "affinity": affinity,
                  "cluster_size": cluster_size, "seed": seed, "num_tokens": num_tokens}
    return RoutingStats.from_paths(paths, num_experts, layer_numbers=layer_numbers, provenance=provenance,
                                   keep_paths=None)
