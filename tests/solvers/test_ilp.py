"""ILP backends (SCIP and HiGHS through MathOpt): proven optima equal brute force on tiny instances."""

import numpy as np
import pytest

from moeplace.errors import InputError
from moeplace.placement.cost import objective
from moeplace.placement.validate import violations
from moeplace.solvers import SolveConfig, solve
from moeplace.solvers.exact import reduced_cost_fixing
from tests.solvers.exact_cases import CASES, brute_force, instance, problem
from tests.guards import HANG_GUARD_S


@pytest.mark.parametrize("solver", ["ilp", "ilp-highs"])
@pytest.mark.parametrize("name", list(CASES))
def test_proves_the_brute_force_optimum(solver, name):
    p = problem(name)
    r = solve(p, SolveConfig(time_limit_s=HANG_GUARD_S, seed=1), solver=solver)
    assert violations(p, r.item_gpu_I) == []
    assert r.status == "optimal"
    assert r.objective == pytest.approx(brute_force(name), rel=1e-9)
    assert r.bound == pytest.approx(r.objective, rel=1e-7)


def test_time_limit_keeps_the_hint():
    p = problem("chain")
    hint = np.arange(p.num_items)  # layer-major
    r = solve(p, SolveConfig(time_limit_s=1e-3), solver="ilp", hint=hint)
    assert r.objective <= objective(p, hint) + 1e-9
    assert r.details["plan_from"] in ("hint", "ilp")


def test_refuses_instances_beyond_the_pair_model():
    p = instance(4, 64, 32, 8)
    with pytest.raises(InputError, match=r"256 items on 256 slots need 32,640 pair variables per level"):
        solve(p, SolveConfig(time_limit_s=5), solver="ilp")


def test_reduced_cost_fixing_only_fixes_what_cannot_improve():
    # bound 10, incumbent 12: a variable whose reduced cost lifts the bound past 12 is fixed at its LP value
    lb, ub = reduced_cost_fixing(10.0, np.array([3.0, 1.0, -2.5, -1.0, 5.0]), 12.0, num_fixable=4)
    assert list(ub) == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert list(lb) == [0.0, 0.0, 1.0, 0.0, 0.0]
