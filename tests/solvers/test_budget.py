"""Work budgets decide plans, the wall clock is only a safety net: determinism, the prefix property, and a
stop on the clock reported as such (a simulated clock, so nothing here depends on the machine's speed)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from moeplace.solvers import SolveConfig, budget, solve
from moeplace.solvers.budget import Budget
from tests.conftest import REPO
from tests.solvers.test_contract import small_problem

TINY = str(REPO / "examples" / "tiny.toml")


class FakeClock:
    """A clock that moves `step_s` each time a search reads it."""

    def __init__(self, step_s: float) -> None:
        self.now, self.step_s, self.reads = 0.0, step_s, 0

    def __call__(self) -> float:
        self.now += self.step_s
        self.reads += 1
        return self.now


def _run(solver: str, work: float | None, seed: int = 0):
    events: list[tuple[float, float]] = []
    cfg = SolveConfig(time_limit_s=600, seed=seed, work_limit=work,
                      progress=lambda info: events.append((info["evaluations"], info["objective"])))
    return solve(small_problem(affinity=0.3, seed=2), cfg, solver=solver), events


@pytest.mark.parametrize("solver", ["lns", "greedy"])
def test_same_inputs_and_seed_give_the_same_plan(solver):
    a, ea = _run(solver, None, seed=4)
    b, eb = _run(solver, None, seed=4)
    assert a.stop_reason in ("work_limit", "converged")
    assert np.array_equal(a.item_gpu_I, b.item_gpu_I) and a.work == b.work and ea == eb


@pytest.mark.parametrize("solver", ["lns", "greedy"])
def test_more_work_continues_the_same_search(solver):
    """A run with budget W is a prefix of every run with more: the same events below W, never a worse plan."""
    runs = [_run(solver, w) for w in (30, 120, 400, 1500, 10**7)]
    objectives = [r.objective for r, _ in runs]
    assert objectives == sorted(objectives, reverse=True), objectives
    assert objectives[0] > objectives[-1]                    # the budgets matter on this instance
    for (short, e_short), (long, e_long) in zip(runs, runs[1:]):
        w = short.work_limit
        assert short.stop_reason == "work_limit" and short.work >= w
        assert [e for e in e_short if e[0] < w] == [e for e in e_long if e[0] < w]
        assert len([e for e in e_short if e[0] < w]) > 0 or w < 100


def test_default_budget_is_recorded_and_bounds_the_work():
    r, _ = _run("lns", None)
    from moeplace.solvers.lns import WORK_PER_ITEM

    assert r.work_limit == WORK_PER_ITEM * small_problem().num_items
    assert r.stop_reason == "converged" or r.work < r.work_limit + 200   # a window may finish past the limit


def test_a_stop_on_the_clock_is_reported_as_such(monkeypatch):
    clock = FakeClock(step_s=1000.0)
    monkeypatch.setattr(budget, "wall_clock", clock)
    r = solve(small_problem(affinity=0.3, seed=2), SolveConfig(time_limit_s=5, seed=0), solver="lns")
    assert r.stop_reason == "time_limit" and clock.reads >= 2
    assert r.work < r.work_limit


def test_the_first_stop_to_fire_is_the_one_recorded(monkeypatch):
    monkeypatch.setattr(budget, "wall_clock", FakeClock(step_s=0.0))
    b = Budget(100, 10.0)
    phase = b.sub(40)
    assert not phase.exhausted(39) and phase.exhausted(40)
    assert b.fired is None and not b.exhausted(99)             # a phase's own limit is not the search's stop
    assert b.exhausted(100) and b.fired == "work_limit"
    monkeypatch.setattr(budget, "wall_clock", FakeClock(step_s=100.0))
    late = Budget(100, 10.0)
    assert late.exhausted(0) and late.fired == "time_limit" and late.timed_out
    assert late.exhausted(1000) and late.fired == "time_limit"   # the first stop stays the recorded one


def test_stop_message_says_what_to_do():
    assert budget.stop_message("work_limit", 600) is None and budget.stop_message("converged", 600) is None
    msg = budget.stop_message("time_limit", 5)
    assert "5 s" in msg and "depends on how fast and how busy this machine was" in msg and "--time-limit" in msg


def test_two_processes_write_byte_identical_plans(tmp_path):
    """Separate processes with different hash seeds: no set/dict order or memory address reaches the plan."""
    digests = []
    for k, hash_seed in enumerate(("1", "12345")):
        out = tmp_path / f"p{k}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
        subprocess.run([sys.executable, "-m", "moeplace", "solve", "--model", TINY, "--nodes", "4",
                        "--gpus-per-node", "8", "--seed", "3", "--no-emit", "-q", "--out", str(out)],
                       check=True, env=env, cwd=tmp_path)
        digests.append(hashlib.sha256((out / "plan.json").read_bytes()).hexdigest())
        plan = json.loads((out / "plan.json").read_text())
        assert plan["solver"]["reproducible"] and plan["solver"]["stop_note"] is None
        assert plan["solver"]["stop_reason"] in ("work_limit", "converged")
    assert digests[0] == digests[1]


def test_the_clock_is_a_safety_net_for_the_searches_and_the_budget_of_the_exact_backends():
    from moeplace.solvers.registry import default_time_limit_s

    assert default_time_limit_s("lns") == default_time_limit_s("greedy") == 600.0
    assert default_time_limit_s("cpsat") == default_time_limit_s("ilp") == 60.0
    r = solve(small_problem(), solver="lns")                      # no config: the solver's defaults
    assert r.work_limit == 40 * small_problem().num_items and r.stop_reason in ("work_limit", "converged")
