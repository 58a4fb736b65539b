"""The lns backend's cyclic exchanges (step 7): exact bookkeeping, monotone, deterministic."""

from __future__ import annotations

import numpy as np

from moeplace.placement.cost import objective
from moeplace.placement.validate import violations
from moeplace.solvers import lns
from moeplace.solvers.affinity import build_affinity
from moeplace.solvers.budget import Budget
from moeplace.solvers.greedy import Incumbent
from moeplace.solvers.search import LocalSearch
from tests.solvers.test_contract import small_problem
from tests.guards import HANG_GUARD_S


def _cycles(start: np.ndarray, seed: int, work: float):
    p = small_problem()
    search = LocalSearch(p, build_affinity(p.traffic), start)
    inc = Incumbent(search, start.copy(), objective(p, start), "test", stop="running")
    seen: list[float] = []
    tries, accepted = lns.cycle_exchanges(inc, p, np.random.default_rng(seed), Budget(work, float("inf")), seen.append)
    return p, inc, tries, accepted, seen


def test_cycles_keep_the_plan_feasible_and_the_objective_exact():
    p = small_problem()
    start = np.random.default_rng(5).permutation(p.num_gpus)[:p.num_items]   # a poor plan: room to improve
    p, inc, tries, accepted, seen = _cycles(start, seed=1, work=20_000)
    assert tries > 0 and accepted > 0
    assert violations(p, inc.item_gpu) == []
    assert np.isclose(inc.objective, objective(p, inc.item_gpu), rtol=1e-9)
    assert seen == sorted(seen, reverse=True) and inc.objective < objective(p, start)  # only improvements kept
    assert np.array_equal(inc.search.item_gpu, inc.item_gpu)


def test_cycles_are_deterministic_and_stop_on_work_or_patience():
    p = small_problem()
    start = np.random.default_rng(5).permutation(p.num_gpus)[:p.num_items]
    a = _cycles(start, seed=2, work=5_000)
    b = _cycles(start, seed=2, work=5_000)
    assert np.array_equal(a[1].item_gpu, b[1].item_gpu) and a[2] == b[2]
    for work in (5_000, 10**9):
        _, inc, tries, _, _ = _cycles(start, seed=2, work=work)
        assert (inc.search.evals >= work) if inc.stop == "running" else (inc.stop == "converged")
        assert inc.stop == ("running" if work == 5_000 else "converged")


def test_lns_reports_its_cycles():
    from moeplace.solvers import SolveConfig, solve

    r = solve(small_problem(), SolveConfig(time_limit_s=HANG_GUARD_S, seed=0, workers=1, work_limit=50_000), solver="lns")
    assert r.details["cycles"] >= lns.CYCLE_PATIENCE or r.stop_reason == "work_limit"
    assert r.details["cycles_accepted"] <= r.details["cycles"]
