"""torch stays out of planning; its absence is one line; experts load from Hugging Face safetensors layouts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from moeplace.errors import InputError
from tests.runtime.helpers import REPO, tiny_model


def test_planning_never_imports_torch():
    code = ("import sys, moeplace.cli, moeplace.runtime, moeplace.runmodel.validation, moeplace.runmodel.identity, "
            "moeplace.runmodel.workload, moeplace.runmodel.schedule, moeplace.runmodel.measured; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_missing_torch_is_one_line_with_the_install_hint(monkeypatch):
    from moeplace.runtime.deps import import_torch

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(InputError) as err:
        import_torch()
    assert str(err.value) == ("the runtime needs PyTorch, which is not installed: install moeplace[runtime] "
                              "(pip install 'moeplace[runtime]') to get PyTorch")


def test_calibrate_without_a_gpu(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from moeplace.cli import main

    with pytest.raises(SystemExit) as ex:
        main(["calibrate", "--out", str(tmp_path / "p.json")])
    assert ex.value.code == 2
    assert capsys.readouterr().err == "error: --out: calibration measures GPUs, and torch sees no CUDA device\n"


def test_experts_load_from_safetensors(tmp_path):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    from moeplace.runtime.experts import load_expert

    m = tiny_model()  # MoE layers are model layers 2 and 3: Hugging Face index 1 and 2
    g = torch.randn(16, 32)
    u = torch.randn(16, 32)
    d = torch.randn(32, 16)
    st.save_file({"model.layers.2.mlp.experts.3.gate_proj.weight": g, "model.layers.2.mlp.experts.3.up_proj.weight": u,
                  "model.layers.2.mlp.experts.3.down_proj.weight": d}, str(tmp_path / "a.safetensors"))
    ex = load_expert(tmp_path / "a.safetensors", m, 1, 3, dtype=torch.float32, device="cpu")
    assert torch.equal(ex.w_in, torch.cat([g.t(), u.t()], dim=1)) and torch.equal(ex.w_out, d.t())
    st.save_file({"model.layers.1.block_sparse_moe.experts.0.w1.weight": g,
                  "model.layers.1.block_sparse_moe.experts.0.w3.weight": u,
                  "model.layers.1.block_sparse_moe.experts.0.w2.weight": d}, str(tmp_path / "mixtral.safetensors"))
    assert torch.equal(load_expert(tmp_path / "mixtral.safetensors", m, 0, 0, dtype=torch.float32,
                                   device="cpu").w_out, d.t())
    with pytest.raises(InputError, match="no weights for expert 1 of layer 2"):
        load_expert(tmp_path / "a.safetensors", m, 1, 1, dtype=torch.float32, device="cpu")
    st.save_file({"model.layers.2.mlp.experts.3.gate_proj.weight": g.t().contiguous(),
                  "model.layers.2.mlp.experts.3.up_proj.weight": u, "model.layers.2.mlp.experts.3.down_proj.weight": d},
                 str(tmp_path / "bad.safetensors"))
    with pytest.raises(InputError, match=r"gate_proj.weight has shape \(32, 16\), the model needs \(16, 32\)"):
        load_expert(tmp_path / "bad.safetensors", m, 1, 3, dtype=torch.float32, device="cpu")
