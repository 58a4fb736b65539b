"""On GPUs (marker `gpu`, skipped without CUDA): the fused step and the generic engine against the float64
reference in bf16 (relative error <= 1e-2), and the expert kernels against float64."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from moeplace.runtime.measured import load_measured  # noqa: E402
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
