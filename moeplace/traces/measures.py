"""Per-layer measures of routing statistics, comparable across expert counts and top-k.

With q_e = load[e] / tokens the probability that a token chooses expert e (sum over e is k):

    load_max_over_mean  max_e load / mean_e load                         (hot expert vs the average)
    load_entropy        H(load / sum) / ln E, in [0, 1]                  (1 is uniform)
    load_cv             std_e(q) / mean_e(q), with the multinomial sampling noise (1 - k/E) / mean load
                        taken out of the variance: the spread of expert popularity, not of the sample.
                        This is the skew that synthesis fits (the generator's lognormal sigma sets it).
    coact_share         over tokens that chose e: the share whose other experts include e's best partner
                        (argmax_f coact[e, f]), weighted by load
    coact_lift          the same share measured out of sample and corrected for chance:
                        (share - chance) / (1 - chance), chance = P(f in the other k-1 | e) for
                        independent choices = q_f (k-1) / (k - q_e); 0 = no structure, 1 = e always
                        comes with its partner
    affinity_share      over tokens that chose e at layer l: the share that chose e's best successor
                        (argmax_f trans[e, f]) at l+1: "the share of transitions captured by each expert's
                        best successor", counted per token so that it does not shrink as 1/k
    affinity_lift       out of sample and corrected for chance (chance = q_f at l+1): 0 when the next
                        layer's choice is independent of this one, 1 when the successor is certain

Shares are in-sample over every token. Lifts pick the best partner/successor on one half of the path
sample (even rows) and score it on the other (odd rows), then swap: a best-of-E pick on a few hundred
tokens per expert is biased upwards by noise, which would make small traces look structured. Without a
path sample (count-only inputs) lifts are computed in-sample and flagged. For rank-aligned transitions
(`trans_pairing` "rank") a token pairs its r-th choices, so n_e = row sum and chance = q_f / k.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from moeplace.traces.kernels import count_paths
from moeplace.traces.stats import RoutingStats

MIN_SPLIT_TOKENS = 64


@dataclass(frozen=True)
class Measures:
    layer_numbers: tuple[int, ...]
    load_max_over_mean: tuple[float, ...]
    load_entropy: tuple[float, ...]
    load_cv: tuple[float, ...]
    coact_share: tuple[float, ...]
    coact_lift: tuple[float, ...]
    affinity_share: tuple[float, ...]
    affinity_lift: tuple[float, ...]
    lift_method: str

    def summary(self) -> dict[str, float]:
        """Means over layers (NaN where unmeasured) of every measure."""
        out = {}
        for name in ("load_max_over_mean", "load_entropy", "load_cv", "coact_share", "coact_lift",
                     "affinity_share", "affinity_lift"):
            vals = np.asarray(getattr(self, name), float)
            out[name] = float(np.nanmean(vals)) if vals.size and np.isfinite(vals).any() else float("nan")
        return out

    def as_dict(self) -> dict:
        return {**{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()},
                "summary": self.summary()}


def load_measures(load_LE: np.ndarray, tokens_L: np.ndarray, top_k: int) -> tuple[np.ndarray, ...]:
    load = load_LE.astype(float)
    L, E = load.shape
    mean = load.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mom = np.where(mean > 0, load.max(axis=1) / mean, np.nan)
        p = load / load.sum(axis=1, keepdims=True)
        ent = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0).sum(axis=1) / np.log(E)
        cv2 = load.var(axis=1) / mean**2
        noise = (1 - top_k / E) / mean
        T = np.maximum(tokens_L.astype(float), 2)
        cv = np.sqrt(np.clip((cv2 - noise) / (1 - 1 / T), 0, None))
    return mom, ent, np.where(mean > 0, cv, np.nan)


def _coact_parts(fit_C: np.ndarray, test_C: np.ndarray, test_load: np.ndarray, test_tokens: float, k: int):
    """(captured, chance, weight) sums of one layer: partner chosen on fit counts, scored on test counts."""
    E = fit_C.shape[0]
    has = fit_C.sum(axis=1) > 0
    best = fit_C.argmax(axis=1)
    n = np.where(has, test_load, 0).astype(float)
    q = test_load / max(test_tokens, 1)
    chance = np.minimum(q[best] * (k - 1) / np.maximum(k - q, 1e-9), 1.0)
    return float(test_C[np.arange(E), best][has].sum()), float((n * chance).sum()), float(n.sum())


def _trans_parts(fit_R: np.ndarray, test_R: np.ndarray, test_next_load: np.ndarray, test_next_tokens: float,
                 k: int, pairing: str):
    E = fit_R.shape[0]
    has = fit_R.sum(axis=1) > 0
    best = fit_R.argmax(axis=1)
    per_token = k if pairing == "all" else 1
    n = np.where(has, test_R.sum(axis=1) / per_token, 0).astype(float)
    q = test_next_load / max(test_next_tokens, 1) / (1 if pairing == "all" else k)
    return float(test_R[np.arange(E), best][has].sum()), float((n * q[best]).sum()), float(n.sum())


def _lift(parts: list[tuple[float, float, float]]) -> float:
    hit, chance, n = (sum(x) for x in zip(*parts)) if parts else (0.0, 0.0, 0.0)
    if n <= 0:
        return float("nan")
    share, base = hit / n, chance / n
    return (share - base) / (1 - base) if base < 1 else float("nan")


def measure(stats: RoutingStats) -> Measures:
    L, k = stats.num_moe_layers, stats.top_k
    mom, ent, cv = load_measures(stats.load_LE, stats.tokens_L, k)
    has_coact = stats.has("coact") and k > 1
    has_trans = stats.has("trans") and L > 1
    with np.errstate(divide="ignore", invalid="ignore"):
        co_share = [float(stats.coact_LEE[li].max(axis=1).sum() / stats.load_LE[li].sum()) if has_coact and
                    stats.load_LE[li].sum() else float("nan") for li in range(L)]
        per = k if stats.trans_pairing == "all" else 1
        af_share = [float(stats.trans_LEE[li].max(axis=1).sum() / (stats.trans_LEE[li].sum() / per))
                    if has_trans and stats.trans_LEE[li].sum() else float("nan") for li in range(L - 1)]
    folds = _folds(stats)
    method = (f"split-half on {stats.paths_TLK.shape[0]:,} sampled paths" if folds is not None
              else "in-sample counts (no path sample)")
    if folds is None:
        folds = [(_Half(stats.coact_LEE, stats.trans_LEE, stats.load_LE, stats.tokens_L),) * 2]
    co_lift, af_lift = [], []
    for li in range(L):
        co_lift.append(_lift([_coact_parts(a.coact[li], b.coact[li], b.load[li], b.tokens[li], k) for a, b in folds])
                       if has_coact else float("nan"))
    for li in range(L - 1):
        af_lift.append(_lift([_trans_parts(a.trans[li], b.trans[li], b.load[li + 1], b.tokens[li + 1], k,
                                           stats.trans_pairing) for a, b in folds]) if has_trans else float("nan"))
    return Measures(layer_numbers=stats.layer_numbers, load_max_over_mean=_t(mom), load_entropy=_t(ent),
                    load_cv=_t(cv), coact_share=_t(co_share), coact_lift=_t(co_lift), affinity_share=_t(af_share),
                    affinity_lift=_t(af_lift), lift_method=method)


@dataclass(frozen=True, eq=False)
class _Half:
    coact: np.ndarray
    trans: np.ndarray
    load: np.ndarray
    tokens: np.ndarray


def _folds(stats: RoutingStats):
    if not stats.has("paths") or stats.paths_TLK.shape[0] < MIN_SPLIT_TOKENS or stats.trans_pairing != "all":
        return None
    halves = []
    for r in (0, 1):
        c = count_paths(stats.paths_TLK[r::2], stats.num_experts)
        halves.append(_Half(c.coact_LEE, c.trans_LEE, c.load_LE, c.tokens_L))
    return [(halves[0], halves[1]), (halves[1], halves[0])]


def _t(values) -> tuple[float, ...]:
    return tuple(float(x) for x in np.asarray(values, float))
