"""On GPUs (marker `gpu`, skipped without CUDA): the fused step and the generic engine against the float64
reference in bf16 (relative error <= 1e-2), and the expert kernels against float64."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from moeplace.runmodel.measured import load_measured  # noqa: E402
from tests.runtime.helpers import manifest, spawn, tiny_model, write_manifest  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.mark.parametrize("engine,flow", [("epstep", "ep"), ("generic", "ep"), ("generic", "chain")])
def test_worker_on_gpus_matches_the_reference(tmp_path, engine, flow):
    if _gpus() < 2:
        pytest.skip("needs 2 GPUs")
    model = tiny_model(num_experts=2, hidden=256, expert_hidden=128)
    m = manifest(flow, nodes=1, gpus_per_node=2, model=model, tokens=64,
                 placement=lambda ml, e: e if engine == "epstep" else (e + ml) % 2)
    path = write_manifest(m, tmp_path / "manifest.json")
    results = spawn(m, path, tmp_path / "run", "--device", "cuda", "--engine", engine, "--steps", "3", "--warmup", "1",
                    "--check", env={"CUDA_VISIBLE_DEVICES": "0,1"}, timeout_s=300)
    assert [rc for rc, _ in results] == [0, 0], results
    meas = load_measured(tmp_path / "run" / "measured.json")
    assert meas.backend == "nccl" and meas.dtype == "bf16" and meas.engine == engine
    assert meas.check is not None and meas.check.passed and meas.check.rel_err <= 1e-2


def test_expert_kernels_match_float64():
    from moeplace.runtime.expertops import tune_expert
    from moeplace.runtime.experts import expert_forward, seeded_expert

    dev = torch.device("cuda", 0)
    model = tiny_model(hidden=1024, expert_hidden=512)
    ex = seeded_expert(model, 0, 0, seed=1, dtype=torch.bfloat16, device=dev)
    for n in (16, 128, 1024):
        choice = tune_expert(ex, n)
        x = torch.randn(n, 1024, device=dev, dtype=torch.bfloat16)
        ref = expert_forward(x.double(), ex.w_in.double(), ex.w_out.double(), "swiglu")
        err = float(torch.linalg.vector_norm(choice.fn(x).double() - ref) / torch.linalg.vector_norm(ref))
        assert err <= 1e-2, (n, choice.name, err)


@pytest.mark.parametrize("small", [True, False])
def test_counted_expert_matches_float64_at_every_regime(small):
    from moeplace.runtime.counted import LARGE_DEFAULT, SMALL_DEFAULT, CountedSwiGLU, _split
    from moeplace.runtime.experts import expert_forward, seeded_expert

    dev = torch.device("cuda", 0)
    model = tiny_model(hidden=1024, expert_hidden=512)
    ex = seeded_expert(model, 0, 0, seed=1, dtype=torch.bfloat16, device=dev)
    W, C = 4, 96
    fn = CountedSwiGLU(ex.w_in, ex.w_out, segments=W, rows_per_segment=C, small=SMALL_DEFAULT if small else (),
                       large=LARGE_DEFAULT)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(W * C, 1024, device=dev, dtype=torch.bfloat16)
    counts = torch.zeros(W, dtype=torch.int32, device=dev)
    out = torch.empty_like(x)
    graph = torch.cuda.CUDAGraph()  # captured once: every count below is replayed through the same graph
    fn(x, counts, out=out)
    torch.cuda.synchronize()
    with torch.cuda.graph(graph):
        fn(x, counts, out=out)
    for total in (0, 1, 17, 32, 33, 128, 129, 200, W * C):
        cnt = _split(total, W, C, g) if total else torch.zeros(W, dtype=torch.int32)
        counts.copy_(cnt)
        out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        for p, n in enumerate(cnt.tolist()):
            seg = slice(p * C, p * C + n)
            assert torch.isnan(out[p * C + n:(p + 1) * C].float()).all(), "padding rows were written"
            if n:
                ref = expert_forward(x[seg].double(), ex.w_in.double(), ex.w_out.double(), "swiglu")
                err = float(torch.linalg.vector_norm(out[seg].double() - ref) / torch.linalg.vector_norm(ref))
                assert err <= 1e-2, (total, p, err)


@pytest.mark.parametrize("counted", [False, True])
def test_fused_step_on_one_gpu_matches_float64(counted):
    import torch.distributed as dist

    from moeplace.runtime.calibrate import init_local_group
    from moeplace.runtime.counted import build_counted
    from moeplace.runtime.epstep import EpStep
    from moeplace.runtime.experts import expert_forward, seeded_expert

    if not dist.is_initialized():
        init_local_group(0, 1, __import__("tests.runtime.helpers", fromlist=["free_port"]).free_port())
    dev = torch.device("cuda", 0)
    model = tiny_model(num_experts=2, top_k=1, hidden=1024, expert_hidden=512)
    ex = seeded_expert(model, 0, 0, seed=1, dtype=torch.bfloat16, device=dev)
    T, C = 128, 128
    fn = build_counted(ex, 1, C) if counted else ex
    assert fn is not None
    step = EpStep(rank=0, world=1, expert=fn, hidden=1024, k=1, tokens=T, capacity=C, micro_batches=2,
                  transport="nccl", device=dev, dtype=torch.bfloat16, lut=torch.zeros(2, dtype=torch.int64),
                  counted=counted)
    x = torch.randn(T, 1024, device=dev, dtype=torch.bfloat16)
    step.load(x, torch.zeros(T, 1, dtype=torch.int64, device=dev), torch.full((T, 1), 0.5, device=dev))
    step.capture()
    step.run()
    torch.cuda.synchronize()
    ref = x.double() + 0.5 * expert_forward(x.double(), ex.w_in.double(), ex.w_out.double(), "swiglu")
    err = float(torch.linalg.vector_norm(step.out.double() - ref) / torch.linalg.vector_norm(ref))
    assert err <= 1e-2, err
