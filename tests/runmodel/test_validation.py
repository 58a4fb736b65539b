"""Validation arithmetic by hand, the profile fit, and the `validate` command's output (no torch needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moeplace.cli import main
from moeplace.costmodel.presets import load_profile
from moeplace.costmodel.profile import CurvePoint, ExpertDims
from moeplace.placement.plan import plan_json
from moeplace.placement.presets import load_cluster, load_model
from moeplace.planner import PlanRequest, plan_placement
from moeplace.runmodel.measured import LayerTime, Measured, RankTime, Spread
from moeplace.runmodel.profilefit import build_profile, default_transport
from moeplace.runmodel.validation import compare, headline, load_run_plan, predict
from tests.guards import HANG_GUARD_S


def _plan():
    model = load_model(None, name="v", num_layers=2, dense_layers=[], num_experts=2, top_k=2, hidden=64,
                       expert_hidden=32, num_heads=2, head_dim=32)
    cluster = load_cluster("h100-sxm", name="v", num_nodes=1, gpus_per_node=2, experts_per_gpu=2)
    return plan_placement(PlanRequest(model=model, cluster=cluster, flow="ep", balance_per_layer=True,
                                      time_limit_s=HANG_GUARD_S)).plan


def _pp(plan, tmp_path):
    (tmp_path / "plan.json").write_text(plan_json(plan))
    return load_run_plan(tmp_path)


def _profile(plan):
    """Expert t = 10 us x tokens; exchange t = 1 us per KB one GPU sends (both power laws: exact in log-log)."""
    base = load_profile("h100-sxm")
    m = plan.model
    return base.model_copy(update={
        "expert_dims": ExpertDims(hidden=m.hidden, expert_hidden=m.expert_hidden),
        "expert_curve": [CurvePoint(x=1, us=10.0), CurvePoint(x=1000, us=10000.0)],
        "alltoall_curve": [CurvePoint(x=1e3, us=1.0), CurvePoint(x=1e6, us=1e3)],
    })


def _measured(plan, layer_us, step_us, tokens, mb=1):
    sp = lambda v: Spread(median=v, p10=v, p90=v)  # noqa: E731
    return Measured(manifest_sha256="x", plan_sha256="y", model={}, flow="ep", world_size=2, num_nodes=1,
                    gpus_per_node=2, device="test", backend="nccl", engine="epstep", transport="symm", dtype="bf16",
                    cuda_graphs=True, micro_batches=mb, tokens_per_step=tokens, tokens_per_gpu=tokens / 2,
                    routing_steps=1, warmup_steps=1, steps=1, capacity_tokens_per_peer=tokens, overflow_rows_per_step=0,
                    layers=[LayerTime(moe_layer=i, layer=i + 1, us=sp(v), tokens_in=tokens) for i, v in enumerate(layer_us)],
                    step_us=sp(step_us), tokens_per_s=1.0, bytes_per_step={}, node_pairs=[], measured_at="now",
                    ranks=[RankTime(rank=0, host="h", local_gpu=0, step_us_median=1.0)])


def test_prediction_by_hand(tmp_path):
    plan = _plan()
    prof = _profile(plan)
    pp = _pp(plan, tmp_path)
    # 100 tokens, every token on both experts (top-2 of 2): each GPU computes 100 rows of one expert per layer:
    # the curve t = 10 n gives 1000 us. Transfers: the exchange curve t = 1 us per KB one GPU sends, at the
    # bytes per GPU of each step that the cost model's flow_transfers charges (dispatch, combine).
    from moeplace.costmodel.transfers import flow_transfers

    tr = flow_transfers(pp.problem, pp.item_gpu_I)
    per_gpu_kb = 100 * tr.nvlink_SLN.max(axis=2) / 2 / 1e3            # [steps, layers]
    assert tr.egress_SLN.sum() == 0 and per_gpu_kb[1, 0] == 6.4       # combine: each token crosses once
    layer, C, X = predict(pp, prof, 100, 1)
    np.testing.assert_allclose(C, [1000.0, 1000.0], rtol=1e-6)
    np.testing.assert_allclose(X, per_gpu_kb.sum(axis=0), rtol=1e-6)
    # Two micro-batches: C/2 + X/2 + max(C/2, X/2) per layer.
    layer2, _, _ = predict(pp, prof, 100, 2)
    np.testing.assert_allclose(layer2, 1000.0 + per_gpu_kb.sum(axis=0) / 2, rtol=1e-6)
    measured = 1000.0 + float(per_gpu_kb.sum(axis=0)[0])
    rows = compare(pp, _measured(plan, [measured / 1.1, measured], 2 * measured * 0.8, 100), prof)
    assert [round(r.error, 4) for r in rows] == [0.1, 0.0, 0.25]
    assert headline(rows) == {"median_abs_error": pytest.approx(0.1), "worst_abs_error": pytest.approx(0.25),
                              "points": 3}


def test_validate_command(tmp_path, capsys):
    plan = _plan()
    (tmp_path / "plan.json").write_text(plan_json(plan))
    prof = _profile(plan)
    (tmp_path / "profile.json").write_text(json.dumps(prof.model_dump(mode="json")))
    layer, _, _ = predict(_pp(plan, tmp_path), prof, 100, 1)
    m = _measured(plan, [float(layer[0]), float(layer[1])], float(layer.sum()), 100)
    (tmp_path / "measured.json").write_text(json.dumps(m.model_dump(mode="json")))
    with pytest.raises(SystemExit) as ex:
        main(["validate", str(tmp_path), str(tmp_path / "measured.json"), "--out", str(tmp_path / "v.md")])
    assert ex.value.code == 0
    out = capsys.readouterr().out
    assert "error: median 0.0%, worst 0.0% over 3 points" in out
    assert "profile h100-sxm (preset)" in out
    report = (tmp_path / "v.md").read_text()
    cell = f"{layer[0]:,.1f}"
    assert f"| MoE layer 1 | {cell} | {cell} | +0.0% |" in report


def test_validate_refuses_a_mismatched_run(tmp_path, capsys):
    plan = _plan()
    (tmp_path / "plan.json").write_text(plan_json(plan))
    m = _measured(plan, [1.0], 1.0, 100)
    (tmp_path / "measured.json").write_text(json.dumps(m.model_dump(mode="json")))
    with pytest.raises(SystemExit) as ex:
        main(["validate", str(tmp_path), str(tmp_path / "measured.json"), "--profile", "h100-sxm"])
    assert ex.value.code == 2
    assert capsys.readouterr().err.strip().endswith(
        "measured.json is a run of 2 GPUs and 1 MoE layers; the plan has 2 GPUs and 2")


def test_profile_fit_from_measurements():
    model = load_model(None)
    curves = {"nccl-a2a": [{"tokens_per_peer": t, "us": 40 + t * 0.05} for t in (1, 128, 2048)],
              "symm": [{"tokens_per_peer": t, "us": 20 + t * 0.06} for t in (1, 128, 2048)],
              "symm-ce": [{"tokens_per_peer": t, "us": 30 + t * 0.04} for t in (1, 128, 2048)],
              "p2p": [{"tokens": t, "bytes": t * 14336, "us": 10 + t * 14336 / 400e3} for t in (1, 128, 2048)]}
    assert [default_transport(2, 1), default_transport(2, 2), default_transport(4, 1), default_transport(4, 2),
            default_transport(8, 2)] == ["symm", "symm-ce", "symm", "symm-ce", "nccl"]
    p = build_profile(name="t", device="NVIDIA H100 80GB HBM3", memory_gb=80, software={},
                      ceilings={"bf16_tflops": 780.0, "hbm_tbps": 3.0, "matmul_us": 1.0, "copy_us": 1.0},
                      model=model, expert=[{"tokens": 128, "us": 40.0}, {"tokens": 2048, "us": 280.0}], curves=curves,
                      world=2, network_from=load_profile("h100-sxm"))
    assert p.source == "calibrated" and p.peak_bf16_tflops == 989.0
    assert p.nvlink_latency_us == pytest.approx(10.0, abs=0.01) and p.nvlink_gbps == pytest.approx(400.0, rel=1e-3)
    # Exchange: the faster of SM stores and copy engine at each size, x = bytes one GPU sends to the other.
    assert [(c.x, c.us) for c in p.alltoall_curve] == [(14336.0, 20.06), (1835008.0, 27.68), (29360128.0, 111.92)]
    assert p.kernel_overhead_us == pytest.approx(40.0 - 88_080_384 / 3e12 * 1e6, abs=0.01)
    assert p.transfer_floor_us == pytest.approx(10.06, abs=0.01)
    assert "not measured (one host)" in p.derivation["nic_gbps_per_gpu"]
    p4 = build_profile(name="t", device="NVIDIA H200", memory_gb=141, software={},
                       ceilings={"bf16_tflops": 780.0, "hbm_tbps": 4.0, "matmul_us": 1.0, "copy_us": 1.0},
                       model=model, expert=[{"tokens": 128, "us": 40.0}], curves=curves, world=4,
                       network_from=load_profile("h100-sxm"))
    assert [(c.x, c.us, c.world) for c in p4.alltoall_curve][0] == (3 * 14336.0, 20.06, 4)  # symm, as at 2
    p8 = build_profile(name="t", device="NVIDIA H200", memory_gb=141, software={},
                       ceilings={"bf16_tflops": 780.0, "hbm_tbps": 4.0, "matmul_us": 1.0, "copy_us": 1.0},
                       model=model, expert=[{"tokens": 128, "us": 40.0}], curves=curves, world=8,
                       network_from=load_profile("h100-sxm"))
    assert [(c.x, c.us, c.world) for c in p8.alltoall_curve][0] == (7 * 14336.0, 40.05, 8)  # NCCL past 4 GPUs
