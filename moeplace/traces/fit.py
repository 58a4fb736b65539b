"""Synthesis calibrated to a real trace: measured profiles -> per-layer knobs -> statistics of another shape.

A profile is what `moeplace stats show` measures, per layer (moeplace.traces.measures): the load CV
(skew), the co-activation lift and the affinity lift. Fitting a profile to a model of another shape:

1. Depth: each profile is a function of relative depth; it is interpolated linearly from the source's
   layers (positions 0..1) to the target's, then scaled so that its mean over layers equals the source's
   (interpolation alone would move the mean by a few percent).
2. Knobs: the generator (moeplace.traces.synth) is run with per-layer knobs, its statistics are
   measured with the very same code, and each knob is scaled by target / measured for its layer:
   skew_l for load_cv_l, coact_l for coact_lift_l, affinity_l for affinity_lift_(l-1). The
   random streams are the same in every round (one seed), so the measures move smoothly with the knobs.
   The round with the smallest worst relative error is kept; the knobs go into the provenance, so the
   statistics can be regenerated exactly.

Clusters have max(2, k) experts, so that co-activation at coact = 1 is "the primary always comes with its
partners", the structure the best-partner measure sees. A measure the source lacks (co-activation in a
count-only dump) keeps the generator's default knob.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moeplace.traces.measures import measure
from moeplace.traces.profile import Profile
from moeplace.traces.stats import RoutingStats
from moeplace.traces.synth import DEFAULT_AFFINITY, DEFAULT_COACT, DEFAULT_TOKENS, synthesize, synthesize_paths

CAPS = {"skew": 4.0, "coact": 1.0, "affinity": 1.0}


def depth_profile(values: tuple[float, ...], n: int) -> np.ndarray:
    """Interpolate a per-layer profile to n layers by relative depth, keeping its mean."""
    v = np.asarray(values, float)
    if n == 0:
        return np.zeros(0)
    if v.size == 1 or n == 1:
        return np.full(n, float(np.mean(v)))
    out = np.interp(np.linspace(0, 1, n), np.linspace(0, 1, v.size), v)
    mean = out.mean()
    return out * (v.mean() / mean) if mean > 0 else out


@dataclass(frozen=True)
class FitReport:
    rounds: int
    worst_relative_error: float
    knobs: dict[str, list[float]]
    targets: dict[str, list[float]]
    measured: dict[str, list[float]]


class _Knob:
    """Per-layer proportional search for one knob: x <- x * target / measured, limited to a factor of 2.

    Every measure grows about in proportion to its knob (load CV with sigma, lifts with the forcing
    probabilities), so this fixed-point step converges in a few rounds; secant steps would chase the
    sampling noise of a finite synthetic sample.
    """

    def __init__(self, name: str, x0: np.ndarray, target: np.ndarray):
        self.name, self.x, self.target = name, np.clip(x0, 1e-6, CAPS[name]), target

    def step(self, m: np.ndarray) -> None:
        x = self.x
        new = np.where(m > 1e-9, x * self.target / np.maximum(m, 1e-9), 2 * x)
        self.x = np.clip(np.clip(new, x / 2, 2 * x), 1e-6, CAPS[self.name])


def fit_synthesize(profile: Profile, num_moe_layers: int, num_experts: int, top_k: int, *,
                   num_tokens: int = DEFAULT_TOKENS, seed: int = 0, layer_numbers: tuple[int, ...] | None = None,
                   max_rounds: int = 10, rel_tol: float = 0.02) -> tuple[RoutingStats, FitReport]:
    L, E, k = num_moe_layers, num_experts, top_k
    cluster = max(2, k)
    targets = {"load_cv": depth_profile(profile.load_cv, L)}
    knobs = {"skew": _Knob("skew", np.sqrt(np.log1p(targets["load_cv"] ** 2)), targets["load_cv"])}
    if profile.coact_lift is not None and k > 1:
        targets["coact_lift"] = depth_profile(profile.coact_lift, L)
        knobs["coact"] = _Knob("coact", targets["coact_lift"].copy(), targets["coact_lift"])
    if profile.affinity_lift is not None and L > 1:
        targets["affinity_lift"] = depth_profile(profile.affinity_lift, L - 1)
        knobs["affinity"] = _Knob("affinity", targets["affinity_lift"].copy(), targets["affinity_lift"])
    measure_of = {"skew": "load_cv", "coact": "coact_lift", "affinity": "affinity_lift"}
    best = None
    for rnd in range(1, max_rounds + 1):
        values = {name: kn.x.copy() for name, kn in knobs.items()}
        args = dict(skew=values["skew"], coact=values.get("coact", DEFAULT_COACT),
                    affinity=values.get("affinity", DEFAULT_AFFINITY), cluster_size=cluster, seed=seed,
                    num_tokens=num_tokens)
        paths = synthesize_paths(L, E, k, **args)
        m = measure(RoutingStats.from_paths(paths, E, keep_paths=None))
        got = {name: np.asarray(getattr(m, measure_of[name]), float) for name in knobs}
        err = max(float(np.max(np.abs(got[n] - kn.target) / np.maximum(kn.target, 0.02))) for n, kn in knobs.items())
        if best is None or err < best[0]:
            best = (err, rnd, args, got)
        if err <= rel_tol:
            break
        for name, kn in knobs.items():
            kn.step(got[name])
    err, rnd, args, got = best
    prov = {"like": profile.name, "like_source": profile.source, "fit_rounds": rnd,
            "fit_worst_relative_error": round(err, 6)}
    stats = synthesize(L, E, k, layer_numbers=layer_numbers, provenance=prov, **args)
    report = FitReport(rounds=rnd, worst_relative_error=err,
                       knobs={n: [float(x) for x in np.atleast_1d(args[n])] for n in ("skew", "coact", "affinity")},
                       targets={n: [float(x) for x in v] for n, v in targets.items()},
                       measured={measure_of[n]: [float(x) for x in v] for n, v in got.items()})
    return stats, report
