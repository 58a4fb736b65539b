"""Node-level dedup end to end on CPU: four gloo workers on two emulated nodes move the objective's bytes."""

from __future__ import annotations

import importlib.util

import pytest

pytest.importorskip("torch")

from tests.runtime.helpers import REPO  # noqa: E402

pytestmark = pytest.mark.slow


def _check_module():
    spec = importlib.util.spec_from_file_location("runtime_dedup_check", REPO / "benchmarks" / "runtime_dedup_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_chain_cross_node_bytes_equal_the_objective(tmp_path):
    res = _check_module().run_check(tmp_path, "chain", tokens=256)
    assert res["check_passed"] and res["dedup"] == "node"
    assert res["measured_cross_node_bytes"] > 0
    assert res["measured_cross_node_bytes"] == pytest.approx(res["predicted_cross_node_bytes"], rel=1e-9)
    assert res["measured_bytes_by_tier"] == pytest.approx(res["predicted_bytes_by_tier"], rel=1e-9)
    assert res["gpu_to_gpu_cross_node_bytes"] > res["measured_cross_node_bytes"]  # dedup saved something here


def test_ep_measures_at_most_the_objective(tmp_path):
    # The objective charges the ep combine without dedup; the runtime pre-sums per GPU and per node.
    res = _check_module().run_check(tmp_path, "ep", tokens=256)
    assert res["check_passed"] and 0 < res["measured_cross_node_bytes"] < res["predicted_cross_node_bytes"]


def test_validate_compares_the_bytes_by_tier(tmp_path, capsys):
    import json

    from moeplace.cli import main

    _check_module().run_check(tmp_path, "chain", tokens=256)
    with pytest.raises(SystemExit) as ex:
        main(["validate", str(tmp_path / "plan"), str(tmp_path / "run" / "measured.json"), "--json"])
    assert ex.value.code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dedup"] == "node"
    rows = {r["tier"]: r for r in report["bytes_per_step"]}
    assert set(rows) == {"nvlink", "leaf", "network"}
    # the plan's statistics are another sample of the same routing: within sampling noise, not exact
    assert rows["network"]["measured_bytes"] == rows["leaf"]["measured_bytes"] > 0
    assert 0.8 < rows["network"]["ratio"] < 1.25
