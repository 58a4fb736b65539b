"""The LP-guided lns (issue 13 part 4): never worse than its lns start, deterministic, windows from the LP."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.placement.validate import violations
from moeplace.solvers import SolveConfig, solve
from moeplace.solvers.lns_lp import disagreement, lp_windows
from tests.guards import HANG_GUARD_S
from tests.solvers.test_contract import small_problem


@pytest.mark.parametrize("affinity,seed,work", [(0.6, 0, 300), (0.9, 1, 300), (0.3, 2, 2000), (0.9, 3, 2000)])
def test_never_worse_than_its_lns_start(affinity, seed, work):
    p = small_problem(affinity=affinity, seed=seed)
    cfg = SolveConfig(time_limit_s=HANG_GUARD_S, seed=seed, workers=1, work_limit=work)
    start = solve(p, cfg, solver="lns")
    guided = solve(p, cfg, solver="lns-lp")
    assert violations(p, guided.item_gpu_I) == []
    assert guided.objective <= start.objective + 1e-9 * start.objective
    assert guided.details["lp_rounds"] >= 1
    assert guided.details["lp_gain"] == pytest.approx(start.objective - guided.objective, abs=1e-3)
    assert np.array_equal(solve(p, cfg, solver="lns-lp").item_gpu_I, guided.item_gpu_I)


def test_disagreement_counts_only_split_pairs_and_windows_are_stable():
    pairs = np.array([[0, 1], [0, 2], [2, 3], [1, 3]])
    y = np.array([0.9, 0.5, 0.25, 0.0])
    node = np.array([0, 0, 1, 2])       # pair (0, 1) shares node 0: no disagreement
    D = disagreement(pairs, y, node, 3)
    assert np.array_equal(D, D.T)
    assert D[0, 1] == pytest.approx(0.5) and D[1, 2] == pytest.approx(0.25) and D[0, 2] == 0.0
    assert lp_windows(D, 5) == [(0, 1), (1, 2)]   # zero scores are no window
    assert lp_windows(D, 1) == [(0, 1)]


def test_the_lp_windows_improve_a_short_lns_plan():
    p = small_problem(affinity=0.6, seed=4)
    cfg = SolveConfig(time_limit_s=HANG_GUARD_S, seed=4, workers=1, work_limit=100)
    guided = solve(p, cfg, solver="lns-lp")
    assert guided.details["lp_gain"] > 0
    assert guided.objective < solve(p, cfg, solver="lns").objective
