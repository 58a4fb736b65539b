"""The pair model is the objective: its value at an encoded plan equals the cost module's, exactly."""

import numpy as np
import pytest

from moeplace.errors import InputError
from moeplace.placement.baselines import random_placement
from moeplace.placement.cost import objective
from moeplace.solvers import pairlp
from moeplace.solvers.pairmodel import build_pair_model, check_exact_size, fabric_levels
from moeplace.solvers.pairplan import canonical, decode, encode, fill_slots, model_value
from tests.solvers.exact_cases import CASES, instance, problem


def _random_plans(p, count=6):
    plans = [random_placement(p, seed) for seed in range(count)]
    if p.balance_per_layer:
        plans = [a for a in plans if not _unbalanced(p, a)]
    return plans


def _unbalanced(p, a):
    per = np.zeros((p.num_gpus, p.model.num_moe_layers), dtype=int)
    np.add.at(per, (a, p.item_layer_I), 1)
    return per.max() > p.layer_cap_per_gpu


@pytest.mark.parametrize("name", list(CASES) + ["top3", "three-levels"])
def test_model_value_is_the_objective(name):
    extra = {"top3": lambda: instance(2, 4, 4, 2, top_k=3),
             "three-levels": lambda: instance(2, 8, 8, 2, nodes_per_leaf=2, leaves_per_pod=2)}
    p = extra[name]() if name in extra else problem(name)
    m = build_pair_model(p)
    for a in _random_plans(p):
        slots = fill_slots(m, a, p.experts_per_gpu, p.num_gpus)
        assert model_value(m, encode(m, slots)) == pytest.approx(objective(p, a), rel=1e-12)
        canon = canonical(m, slots)
        assert model_value(m, encode(m, canon)) == pytest.approx(objective(p, a), rel=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_encoded_plans_keep_every_row_and_decode_to_the_same_cost(name):
    p = problem(name)
    m = build_pair_model(p)
    rows = pairlp.Rows.concat([pairlp.base_rows(m), pairlp.triangle_rows(pairlp.all_triangles(m))])
    for a in _random_plans(p, 3):
        v = encode(m, canonical(m, fill_slots(m, a, p.experts_per_gpu, p.num_gpus)))
        act = np.bincount(rows.row, weights=rows.val * v[rows.col], minlength=rows.num_rows)
        assert np.all(act >= rows.lo - 1e-9) and np.all(act <= rows.hi + 1e-9)
        back = decode(m, v, p.gpus_per_node)
        assert objective(p, back) == pytest.approx(objective(p, a), rel=1e-12)


def test_levels_follow_the_tiers():
    p = instance(2, 8, 8, 2, epg=1, nodes_per_leaf=2, leaves_per_pod=2)
    names = [(lv.name, lv.delta) for lv in fabric_levels(p)]
    # nvlink 0.05, leaf 1, pod 2, core 3: leaving the node costs 0.95 more, the leaf 1 more, the pod 1 more
    assert names == [("node", pytest.approx(0.95)), ("leaf", pytest.approx(1.0)), ("pod", pytest.approx(1.0))]
    # one pod per leaf: the leaf and pod levels have the same domains and merge (leaf 1 -> core 3)
    p2 = instance(2, 4, 4, 2, nodes_per_leaf=2, leaves_per_pod=1)
    assert [(lv.name, lv.delta) for lv in fabric_levels(p2)] == [("node", pytest.approx(0.95)),
                                                                  ("leaf", pytest.approx(2.0))]


def test_irregular_level_uses_domain_booleans():
    m = build_pair_model(problem("irregular"))
    assert m.z_level == 1 and list(m.z_size_D) == [4, 2]


def test_too_large_for_the_exact_backends_says_why():
    p = instance(4, 16, 16, 4)
    with pytest.raises(InputError, match=r"64 items on 64 slots need 2,016 pair variables per level .* takes at "
                                         r"most 32 slots"):
        check_exact_size(p, "cpsat", max_slots=32)
