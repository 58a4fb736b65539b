"""The fused step's executed work, by hand: padded rows and bytes, the two-stream schedule, the overlap rate,
the capacity a run used; and `moeplace validate` on a real gloo run."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from moeplace.cli import main
from moeplace.costmodel.presets import load_profile
from moeplace.costmodel.profile import CurvePoint, ExpertDims, OverlapPoint
from moeplace.placement.plan import plan_json
from moeplace.placement.presets import load_cluster, load_model
from moeplace.planner import PlanRequest, plan_placement
from moeplace.costmodel.fusedstep import (
    FusedCharge,
    fused_charge,
    layer_tasks,
    layer_us,
    makespan_us,
    overlap_rate,
    pair_rate,
    step_start_us,
)
from moeplace.runmodel.measured import LayerTime, Measured, RankTime, Spread
from moeplace.runmodel.profilefit import build_profile
from moeplace.runmodel.validation import compare, executed_capacity, graph_bucket, load_run_plan, predict
from tests.guards import HANG_GUARD_S

H = 64  # hidden: a bf16 row is 128 B


def _model(experts: int = 4):
    return load_model(None, name="p", num_layers=2, dense_layers=[], num_experts=experts, top_k=2, hidden=H,
                      expert_hidden=32, num_heads=2, head_dim=32)


def _profile(model, **over):
    """Expert 10 µs per row; every exchange 1 µs per KB one GPU sends (nccl: 2 µs per KB); HBM 1 GB/s = 1e3 B/µs
    (slow on purpose, so that the pack and merge kernels show in the sums)."""
    base = load_profile("h100-sxm")
    upd = {"expert_dims": ExpertDims(hidden=model.hidden, expert_hidden=model.expert_hidden),
           "expert_curve": [CurvePoint(x=1, us=10.0), CurvePoint(x=1000, us=10000.0)],
           "alltoall_curve": [CurvePoint(x=1e3, us=1.0), CurvePoint(x=1e6, us=1e3)],
           "exchange_curves": {"nccl": [CurvePoint(x=1e3, us=2.0), CurvePoint(x=1e6, us=2e3)]},
           "hbm_tbps": 1e-3}
    upd.update(over)
    return base.model_copy(update=upd)


def _plan(world: int):
    model = _model(world)
    cluster = load_cluster("h100-sxm", name="p", num_nodes=1, gpus_per_node=world, experts_per_gpu=2)
    return plan_placement(PlanRequest(model=model, cluster=cluster, flow="ep", balance_per_layer=True,
                                      time_limit_s=HANG_GUARD_S)).plan


def _measured(world, tokens_per_gpu, mb, transport, layer_us_, step_us, *, capacity=None, bytes_per_step=None,
              engine="epstep"):
    sp = lambda v: Spread(median=v, p10=v, p90=v)  # noqa: E731
    T = tokens_per_gpu * world
    return Measured(manifest_sha256="x", plan_sha256="y", model={"hidden": H}, flow="ep", world_size=world,
                    num_nodes=1, gpus_per_node=world, device="test", backend="nccl", engine=engine,
                    transport=transport, dtype="bf16", cuda_graphs=True, micro_batches=mb, tokens_per_step=T,
                    tokens_per_gpu=float(tokens_per_gpu), routing_steps=1, warmup_steps=1, steps=1,
                    capacity_tokens_per_peer=tokens_per_gpu, capacity_rows_per_peer=capacity,
                    overflow_rows_per_step=0, layers=[LayerTime(moe_layer=i, layer=i + 1, us=sp(v), tokens_in=T)
                                                      for i, v in enumerate(layer_us_)],
                    step_us=sp(step_us), tokens_per_s=1.0, bytes_per_step=bytes_per_step or {}, node_pairs=[],
                    measured_at="now", ranks=[RankTime(rank=0, host="h", local_gpu=0, step_us_median=1.0)])


def test_padded_rows_and_bytes_by_hand():
    model = _model()
    prof = _profile(model)
    # 4 GPUs, 32 home tokens, one micro-batch, C = 12 rows per peer (the mean would be 32 x 2 / 4 = 16 minus
    # dedup; what matters is that the charge follows C, not the routing).
    c = fused_charge(prof, model, world=4, tokens_per_gpu=32, micro_batches=1, capacity=12, transport="symm-ce",
                     dtype_bytes=2)
    assert (c.expert_rows, c.exchange_bytes) == (48, 3 * 12 * 128)     # all W x C rows; (W - 1) C rows sent
    assert c.expert_us == pytest.approx(480.0)                           # 10 µs x 48 rows
    assert c.dispatch_us == c.combine_us == pytest.approx(4.608)         # 4,608 B at 1 µs per KB
    assert c.pack_us == pytest.approx(2 * 48 * 128 / 1e3)                # read + write W x C rows: 12.288 µs
    assert c.merge_us == pytest.approx((2 + 2) * 32 * 128 / 1e3)         # x, k rows of y, out: 16.384 µs
    assert c.exchange_curve == "alltoall_curve" and c.rho == 1.0
    # One micro-batch runs in series: pack, dispatch, expert, combine, merge.
    assert layer_us(c) == pytest.approx(12.288 + 4.608 + 480.0 + 4.608 + 16.384)
    # nccl has its own curve (2 µs per KB); symm stores from the compute stream: no pack of its own.
    n = fused_charge(prof, model, world=4, tokens_per_gpu=32, micro_batches=1, capacity=12, transport="nccl",
                     dtype_bytes=2)
    assert n.dispatch_us == pytest.approx(9.216) and n.exchange_curve == "exchange_curves[nccl]"
    s = fused_charge(prof, model, world=4, tokens_per_gpu=32, micro_batches=1, capacity=12, transport="symm",
                     dtype_bytes=2)
    assert s.pack_us == 0.0 and layer_us(s) == pytest.approx(4.608 + 480.0 + 4.608 + 16.384)
    # The whole step starts with copies: the input (32 x 128 B) and each layer's ids (int64) and gates (float32).
    assert step_start_us(prof, model, 32, 2) == pytest.approx((2 * 32 * 128 + 2 * 2 * 32 * 2 * 12) / 1e3)


def _charge(**over) -> FusedCharge:
    base = dict(world=4, micro_batches=2, capacity=1, expert_rows=4, exchange_bytes=1.0, transport="nccl",
                exchange_curve="t", pack_us=1.0, dispatch_us=4.0, expert_us=10.0, combine_us=4.0, merge_us=1.0,
                rho=1.0, rho_source="t")
    base.update(over)
    return FusedCharge(**base)


def test_two_micro_batches_follow_the_issue_order():
    c = _charge()
    # compute: pack0 0-1, pack1 1-2, expert0 5-15 (after dispatch0 1-5), expert1 15-25 (dispatch1 5-9),
    #          merge0 25-26 (combine0 15-19), merge1 29-30 (combine1 25-29)
    assert [t.kind for t in layer_tasks(c)] == ["kernel", "kernel", "exchange", "exchange", "expert", "exchange",
                                                 "expert", "exchange", "kernel", "kernel"]
    assert makespan_us(layer_tasks(c), 1.0) == pytest.approx(30.0)
    # rho = 1/2: dispatch1 shares 5-13 with expert0 (done 19); combine0 shares 19-27 with expert1 (done 33);
    # merge0 33-34; combine1 33-37; merge1 37-38.
    assert makespan_us(layer_tasks(c), 0.5) == pytest.approx(38.0)
    # symm: the exchanges run on the compute stream, so nothing overlaps: 2 x (4 + 10 + 4) + 2 x 1.
    assert layer_us(_charge(transport="symm", pack_us=0.0)) == pytest.approx(38.0)


def test_overlap_rate_from_the_pair_measured():
    assert pair_rate(100.0, 50.0, 125.0) == pytest.approx(50 / 75)       # both = 50 / rho + 100 - 50
    assert pair_rate(100.0, 50.0, 150.0) == pytest.approx(0.5)           # serialised
    assert pair_rate(100.0, 50.0, 99.0) == 1.0                           # no slower than the longer alone
    model = _model()
    pts = [OverlapPoint(x=x, world=4, expert_rows=8, transport="nccl", expert_us=100.0, exchange_us=50.0, both_us=b)
           for x, b in ((1e4, 125.0), (1e6, 150.0))]
    prof = _profile(model, overlap_curve=pts)
    assert overlap_rate(prof, 1e5, "nccl")[0] == pytest.approx((2 / 3 + 0.5) / 2)   # halfway in log bytes
    assert overlap_rate(prof, 1e9, "nccl")[0] == pytest.approx(0.5)                  # flat beyond the points
    rho, why = overlap_rate(prof, 1e5, "symm-ce")
    assert rho == 1.0 and "no overlap_curve for symm-ce" in why
    c = fused_charge(prof, model, world=4, tokens_per_gpu=32, micro_batches=2, capacity=12, transport="nccl",
                     dtype_bytes=2)
    assert c.rho == pytest.approx(overlap_rate(prof, 4608.0, "nccl")[0]) and c.rho < 1.0
    assert layer_us(c) > layer_us(replace(c, rho=1.0))


def test_capacity_recorded_or_derived_from_the_bytes():
    # 4 GPUs, 2 layers, 1 micro-batch, C = 96: bytes_per_step = W (W - 1) x L x 2 x M x C x 128 B.
    b = 4 * 3 * 2 * 2 * 1 * 96 * 128
    assert executed_capacity(_measured(4, 128, 1, "nccl", [1, 1], 1, bytes_per_step={"nvlink": b, "network": 0})) == 96
    assert executed_capacity(_measured(4, 128, 1, "nccl", [1, 1], 1, capacity=80,
                                       bytes_per_step={"nvlink": b})) == 80
    assert executed_capacity(_measured(4, 128, 1, "nccl", [1, 1], 1, bytes_per_step={"nvlink": b + 1})) is None
    assert executed_capacity(_measured(4, 128, 1, "nccl", [1, 1], 1)) is None
    assert executed_capacity(_measured(4, 128, 1, "p2p", [1, 1], 1, capacity=80, engine="generic")) is None
    # Files written before capacity_rows_per_peer still load.
    data = _measured(4, 128, 1, "nccl", [1, 1], 1).model_dump(mode="json")
    del data["capacity_rows_per_peer"]
    assert Measured.model_validate(data).capacity_rows_per_peer is None


def test_compare_charges_the_padded_step(tmp_path):
    plan = _plan(4)
    (tmp_path / "plan.json").write_text(plan_json(plan))
    pp = load_run_plan(tmp_path)
    prof = _profile(plan.model)
    one = 12.288 + 4.608 + 480.0 + 4.608 + 16.384
    step = 2 * one + (2 * 32 * 128 + 2 * 2 * 32 * 2 * 12) / 1e3
    m = _measured(4, 32, 1, "symm-ce", [one, one / 1.25], step * 0.8, capacity=12)
    rows = compare(pp, m, prof)
    assert [r.what for r in rows] == ["MoE layer 1", "MoE layer 2", "whole step"]
    assert [r.predicted_us for r in rows] == pytest.approx([one, one, step])
    assert [round(r.error, 6) for r in rows] == [0.0, 0.25, 0.25]
    assert rows[0].expert_us == pytest.approx(480.0) and rows[0].transfer_us == pytest.approx(2 * 4.608)
    assert rows[2].expert_us == pytest.approx(960.0)


def test_generic_engine_runs_graph_buckets(tmp_path):
    assert graph_bucket(np.array([0.0, 1.0, 16.0, 16.5, 100.0])).tolist() == [0.0, 16.0, 16.0, 32.0, 128.0]
    plan = _plan(2)
    (tmp_path / "plan.json").write_text(plan_json(plan))
    pp = load_run_plan(tmp_path)
    prof = _profile(plan.model)
    # 100 tokens, top-2 of 2 experts: 100 rows per expert; under CUDA graphs the runner runs 128.
    _, C, _ = predict(pp, prof, 100, 1)
    _, Cg, _ = predict(pp, prof, 100, 1, graphs=True)
    np.testing.assert_allclose(C, [1000.0, 1000.0])
    np.testing.assert_allclose(Cg, [1280.0, 1280.0])


def test_profile_fit_keeps_every_transport_and_the_overlap():
    model = load_model(None)
    curves = {"nccl-a2a": [{"tokens_per_peer": t, "us": 40 + t * 0.05} for t in (1, 128)],
              "symm": [{"tokens_per_peer": t, "us": 20 + t * 0.06} for t in (1, 128)],
              "symm-ce": [{"tokens_per_peer": t, "us": 30 + t * 0.04} for t in (1, 128)],
              "p2p": [{"tokens": t, "bytes": t * 14336, "us": 10 + t * 14336 / 400e3} for t in (1, 128)],
              "overlap": [{"tokens_per_peer": 128, "bytes_per_rank": 4 * 128 * 14336, "expert_rows": 512,
                           "transport": "nccl", "expert_us": 80.0, "exchange_us": 50.0, "both_us": 105.0}]}
    p = build_profile(name="t", device="NVIDIA H200", memory_gb=141, software={},
                      ceilings={"bf16_tflops": 780.0, "hbm_tbps": 4.0, "matmul_us": 1.0, "copy_us": 1.0},
                      model=model, expert=[{"tokens": 128, "us": 40.0}], curves=curves, world=4,
                      network_from=load_profile("h100-sxm"))
    assert sorted(p.exchange_curves) == ["nccl", "symm", "symm-ce"]
    assert [(c.x, c.us) for c in p.exchange_curves["symm-ce"]] == [(3 * 14336.0, 30.04), (3 * 128 * 14336.0, 35.12)]
    assert [(c.x, c.us, c.world) for c in p.exchange_curves["nccl"]] == [(3 * 14336.0, 40.05, 4),
                                                                         (3 * 128 * 14336.0, 46.4, 4)]
    (o,) = p.overlap_curve
    assert (o.x, o.expert_rows, o.transport) == (3 * 128 * 14336.0, 512, "nccl")
    assert pair_rate(o.expert_us, o.exchange_us, o.both_us) == pytest.approx(50 / 75)
    assert p.derivation["overlap_curve"].startswith("measured")


@pytest.mark.slow
def test_validate_a_gloo_run(tmp_path, capsys):
    pytest.importorskip("torch")
    from moeplace.launch.manifest import Manifest
    from tests.runtime.helpers import spawn

    plan = _plan(4)
    (tmp_path / "plan").mkdir()
    (tmp_path / "plan" / "plan.json").write_text(plan_json(plan))
    with pytest.raises(SystemExit) as ex:
        main(["emit", str(tmp_path / "plan"), "--out", str(tmp_path / "launch"), "--tokens-per-step", "64",
              "--micro-batches", "2"])
    assert ex.value.code == 0
    capsys.readouterr()
    m = Manifest.model_validate(json.loads((tmp_path / "launch" / "manifest.json").read_text()))
    results = spawn(m, tmp_path / "launch" / "manifest.json", tmp_path / "run", "--steps", "2", "--warmup", "1")
    assert [rc for rc, _ in results] == [0] * 4, results
    meas = json.loads((tmp_path / "run" / "measured.json").read_text())
    assert meas["engine"] == "generic" and meas["capacity_rows_per_peer"] is None
    with pytest.raises(SystemExit) as ex:
        main(["validate", str(tmp_path / "launch"), str(tmp_path / "run" / "measured.json"), "--profile", "h100-sxm",
              "--out", str(tmp_path / "v.json")])
    assert ex.value.code == 0
    report = json.loads((tmp_path / "v.json").read_text())
    assert [r["what"] for r in report["rows"]] == ["MoE layer 1", "MoE layer 2", "whole step"]
    assert report["engine"] == "generic" and report["points"] == 3
    assert all(r["predicted_us"] > 0 and r["measured_us"] > 0 for r in report["rows"])
    assert "error: median" in capsys.readouterr().out


@pytest.mark.gpu
def test_a_fused_run_records_its_capacity(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        pytest.skip("needs 2 CUDA GPUs")
    from moeplace.runmodel.measured import load_measured
    from tests.runtime.helpers import manifest, spawn, tiny_model, write_manifest

    model = tiny_model(num_experts=2, hidden=256, expert_hidden=128)
    m = manifest("ep", nodes=1, gpus_per_node=2, model=model, tokens=64, placement=lambda ml, e: e)
    path = write_manifest(m, tmp_path / "manifest.json")
    results = spawn(m, path, tmp_path / "run", "--device", "cuda", "--engine", "epstep", "--steps", "3", "--warmup",
                    "1", env={"CUDA_VISIBLE_DEVICES": "0,1"}, timeout_s=300)
    assert [rc for rc, _ in results] == [0, 0], results
    meas = load_measured(tmp_path / "run" / "measured.json")
    # top-2 of 2 experts: every home token goes to both ranks, so C is the whole micro-batch of the 32 home tokens.
    assert meas.engine == "epstep" and meas.capacity_rows_per_peer == 32 // meas.micro_batches
    older = Measured.model_validate({**meas.model_dump(mode="json"), "capacity_rows_per_peer": None})
    assert executed_capacity(older) == meas.capacity_rows_per_peer
