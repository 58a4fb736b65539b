"""The solver registry: unknown names and exact backends on a host without OR-Tools."""

from __future__ import annotations

import pytest

from moeplace.errors import InputError
from moeplace.solvers import registry


def test_unknown_solver_names_the_known_ones():
    with pytest.raises(InputError, match=r"unknown solver 'nope' \(known: .*lns"):
        registry.get_solver("nope")


def test_exact_backend_without_ortools_says_what_to_install(monkeypatch):
    registry.available_solvers()
    kept = {k: v for k, v in registry._SOLVERS.items() if k not in registry._NEEDS_ORTOOLS}
    monkeypatch.setattr(registry, "_SOLVERS", kept)
    monkeypatch.setattr(registry, "_load_backends", lambda: None)
    with pytest.raises(InputError, match=r"solver 'cpsat' needs OR-Tools.*pip install 'ortools>=9.10'"):
        registry.get_solver("cpsat")
    assert registry.get_solver("lns") is kept["lns"][0]


def test_every_solve_names_what_proved_its_bound():
    from moeplace.solvers import SolveConfig, solve
    from moeplace.solvers.bounds import combinatorial_bound
    from tests.solvers.exact_cases import instance

    p = instance(3, 4, 3, 4, nodes_per_leaf=3, seed=1)
    r = solve(p, SolveConfig(time_limit_s=30, work_limit=500), solver="lns")
    method = r.details["bound_method"]
    stronger = method.startswith("node-matching-lp") or method.endswith("domain profiles")
    assert method == "combinatorial" or stronger
    assert (r.bound > combinatorial_bound(p) + 1e-9) == stronger
