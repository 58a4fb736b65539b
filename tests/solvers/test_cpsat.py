"""CP-SAT backend: proven optima equal brute force; integer scaling keeps the bound a bound."""

import numpy as np
import pytest

from moeplace.placement.validate import violations
from moeplace.solvers import SolveConfig, solve
from moeplace.solvers.cpsat import integer_scale
from tests.solvers.exact_cases import CASES, brute_force, problem
from tests.guards import HANG_GUARD_S


@pytest.mark.parametrize("name", list(CASES))
def test_proves_the_brute_force_optimum(name):
    p = problem(name)
    r = solve(p, SolveConfig(time_limit_s=HANG_GUARD_S, seed=2, workers=1), solver="cpsat")
    assert violations(p, r.item_gpu_I) == []
    assert r.status == "optimal"
    assert r.objective == pytest.approx(brute_force(name), rel=1e-9)
    assert r.bound <= r.objective + 1e-9


def test_two_workers_reach_the_same_optimum():
    p = problem("chain")
    r = solve(p, SolveConfig(time_limit_s=HANG_GUARD_S, workers=2), solver="cpsat")
    assert r.objective == pytest.approx(brute_force("chain"), rel=1e-9)


def test_integer_scale_is_exact_for_token_counts():
    # bytes are token counts x (vector bytes / sampled tokens): 14,336 / 8,192 = 1.75 per token
    cost = np.array([1.75 * 3, -1.75 * 0.95, 1.75 * 0.055556])
    scale, exact = integer_scale(cost)
    assert exact
    assert np.allclose(cost * scale, np.round(cost * scale))


def test_integer_scale_rounds_down_when_inexact():
    cost = np.array([np.pi, np.e, -np.sqrt(2)])
    scale, exact = integer_scale(cost)
    assert not exact
    assert np.all(np.floor(cost * scale) / scale <= cost)
