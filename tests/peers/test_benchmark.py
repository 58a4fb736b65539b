"""benchmarks/solver_quality.py end to end on the smallest instance: table, gaps, JSON, isolation."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "solver_quality.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("solver_quality", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["solver_quality"] = mod      # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_smallest_instance_end_to_end(bench, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = bench.main(["--only", "small-24-aff0.6-s0", "--peers", "layer-major,eplb,classic", "--solvers", "greedy",
                     "--time-limit", "2", "--small-time-limit", "3600", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| method | held-out cross-node B/token | held-out objective | plan objective | bound | gap |" in text
    report = json.loads(out.read_text())
    (inst,) = report["instances"]
    rows = {r["method"]: r for r in inst["rows"]}
    assert set(rows) == {"layer-major", "eplb", "greedy", "classic-4", "classic-8"}
    assert 0 < inst["best_bound"] <= min(r["plan_objective"] for r in rows.values() if r["kind"] == "solver")
    for r in rows.values():
        assert r["held_cross_node"] >= 0 and 0 <= r["gap"] < 1
    assert rows["greedy"]["plan_objective"] <= rows["layer-major"]["plan_objective"]
    assert rows["classic-8"]["gpus"] == 4


def test_isolated_reports_errors_and_timeouts(bench):
    assert bench.isolated(lambda: {"x": 1}, 30)["x"] == 1
    assert bench.isolated(lambda: 1 / 0, 30)["error"].startswith("ZeroDivisionError")
    import time
    assert bench.isolated(lambda: time.sleep(30), 0.5)["error"].startswith("timeout")
