"""The worker end to end on CPU: 4 gloo processes, result against the single-process reference, failures.

Each test starts real processes (`python -m moeplace.runtime.worker`) with hard timeouts, so a hang fails the
test instead of stalling CI.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from moeplace.runmodel.measured import load_measured  # noqa: E402
from tests.runtime.helpers import manifest, spawn, write_manifest  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("flow,nodes,gpn", [("chain", 1, 4), ("ep", 2, 2)])
def test_distributed_result_equals_the_reference(tmp_path, flow, nodes, gpn):
    m = manifest(flow, nodes=nodes, gpus_per_node=gpn)
    path = write_manifest(m, tmp_path / "manifest.json")
    results = spawn(m, path, tmp_path / "run", "--steps", "2", "--warmup", "1", "--check")
    assert [rc for rc, _ in results] == [0] * 4, results
    meas = load_measured(tmp_path / "run" / "measured.json")
    assert meas.check is not None and meas.check.passed and meas.check.rel_err <= 1e-5
    assert (meas.world_size, meas.flow, meas.backend, meas.dtype, meas.steps) == (4, flow, "gloo", "fp32", 2)
    assert [x.moe_layer for x in meas.layers] == [0, 1] and meas.step_us.median > 0
    assert meas.tokens_per_s > 0 and meas.overflow_rows_per_step == 0
    if nodes == 2:
        assert meas.bytes_per_step["network"] > 0
    for entry in m.ranks:
        body = json.loads((tmp_path / "run" / "ranks" / f"rank-{entry.rank:05d}.json").read_text())
        assert body["status"] == "ok" and body["rank"] == entry.rank and body["host"] == entry.host
        assert body["local_gpu"] == entry.local_gpu and body["steps"] == 2 and body["device"].startswith("cpu")
        assert body["experts"] == [e.model_dump() for e in entry.experts]


def test_world_size_mismatch_exits_2_on_every_rank(tmp_path):
    m = manifest()
    path = write_manifest(m, tmp_path / "manifest.json")
    results = spawn(m, path, tmp_path / "run", env={"WORLD_SIZE": "3"})
    assert {rc for rc, _ in results} == {2}
    assert results[0][1].endswith("world_size: WORLD_SIZE=3 but the manifest has world_size 4 (1 hosts x 4 GPUs): "
                                  "launch it with 4 processes")


def test_a_rank_on_the_wrong_host_stops_everyone(tmp_path):
    m = manifest(startup_s=60, gpus_per_node=2)
    path = write_manifest(m, tmp_path / "manifest.json")
    results = spawn(m, path, tmp_path / "run", per_rank_env=lambda r: {"MOEPLACE_HOST": "elsewhere"} if r == 1 else {})
    codes = [rc for rc, _ in results]
    assert codes[1] == 2 and all(c != 0 for c in codes)
    assert "host 'elsewhere' is not in the manifest (hosts: node00)" in results[1][1]
    for rc, err in results[:1]:
        assert len(err.splitlines()) == 1 and "host 'elsewhere' is not in the manifest" in err


def test_a_dead_rank_stops_everyone(tmp_path):
    m = manifest(gpus_per_node=3)
    path = write_manifest(m, tmp_path / "manifest.json")
    results = spawn(m, path, tmp_path / "run", "--steps", "3", "--warmup", "1",
                    env={"MOEPLACE_FAULT": "rank=2,step=1,mode=exit"})
    assert results[2][0] == 9
    for r in (0, 1):
        rc, err = results[r]
        assert rc == 3 and len(err.splitlines()) == 1, (r, rc, err)
        assert f"rank {r}: " in err and "timed step 1" in err
    status = json.loads((tmp_path / "run" / "ranks" / "rank-00000.json").read_text())
    assert status["status"] == "failed" and "timed step 1" in status["error"]


def test_a_hung_rank_times_out_everywhere(tmp_path):
    m = manifest(collective_s=4, gpus_per_node=2)
    path = write_manifest(m, tmp_path / "manifest.json")
    results = spawn(m, path, tmp_path / "run", "--steps", "3", "--warmup", "1",
                    env={"MOEPLACE_FAULT": "rank=1,step=1,mode=hang"})
    for r, (rc, err) in enumerate(results):
        assert rc == 3 and len(err.splitlines()) == 1, (r, rc, err)
        assert "timed step 1" in err and ("timed out" in err or "timeout after 4 s" in err or "failed:" in err)
