"""Measures: hand-checked values, chance correction, and comparability across expert counts and top-k."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from moeplace.traces.measures import load_measures, measure
from moeplace.traces.stats import RoutingStats
from moeplace.traces.synth import synthesize
from tests.traces.helpers import FLAME_NPZ


def test_load_measures_by_hand():
    mom, ent, cv = load_measures(np.array([[4, 2, 1, 1], [400, 200, 100, 100]]), np.array([8, 800]), 1)
    assert mom.tolist() == [2.0, 2.0]
    assert ent[0] == pytest.approx(1.75 * math.log(2) / math.log(4))     # 1.75 bits over 2 bits
    # raw CV^2 = 0.375 in both; sampling noise (1 - k/E) / mean = 0.375 at 8 tokens, 0.00375 at 800
    assert cv[0] == 0.0
    assert cv[1] == pytest.approx(math.sqrt((0.375 - 0.00375) / (1 - 1 / 800)))


def test_uniform_routing_has_no_skew_and_no_structure():
    s = synthesize(4, 32, 2, num_tokens=6000, skew=0.0, coact=0.0, affinity=0.0, seed=5)
    m = measure(s)
    assert max(m.load_cv) < 0.03 and min(m.load_entropy) > 0.995
    assert max(abs(x) for x in m.affinity_lift) < 0.02 and max(abs(x) for x in m.coact_lift) < 0.02


def test_certain_successors_and_partners_lift_to_one():
    m = measure(synthesize(3, 16, 2, num_tokens=3000, skew=0.2, coact=1.0, affinity=1.0, cluster_size=2))
    assert min(m.affinity_lift) > 0.97 and min(m.coact_lift) > 0.97


@pytest.mark.parametrize("affinity", [0.2, 0.5])
def test_the_affinity_lift_does_not_depend_on_expert_count_or_top_k(affinity):
    lifts = [np.mean(measure(synthesize(6, E, k, num_tokens=6000, skew=0.3, coact=0.0, affinity=affinity,
                                        seed=1)).affinity_lift) for E, k in ((32, 2), (64, 6), (128, 8))]
    assert max(lifts) - min(lifts) < 0.04
    assert all(abs(x - affinity) < 0.06 for x in lifts)


def test_split_half_removes_the_small_sample_bias():
    s = synthesize(3, 64, 6, num_tokens=300, skew=0.0, coact=0.0, affinity=0.0, seed=4)
    out_of_sample = measure(s)
    in_sample = measure(dataclasses.replace(s, paths_TLK=None, paths_key_T=None))
    assert in_sample.lift_method.startswith("in-sample") and out_of_sample.lift_method.startswith("split-half")
    assert min(in_sample.affinity_lift) > 0.08          # best-of-64 picks on ~28 tokens per expert look structured
    assert max(abs(x) for x in out_of_sample.affinity_lift) < 0.04


def test_flame_sample_summary():
    m = measure(RoutingStats.from_paths(np.load(FLAME_NPZ)["topk"], 64))
    s = m.summary()
    assert 0.1 < s["load_cv"] < 0.4 and s["load_entropy"] > 0.98
    assert s["affinity_lift"] > 0.15 and s["coact_lift"] > 0.15
    assert m.affinity_lift[-1] > m.affinity_lift[0]       # FLAME's layer-to-layer affinity grows with depth
