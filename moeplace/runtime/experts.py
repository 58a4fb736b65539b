"""Expert weights and the expert MLP: SwiGLU or plain MLP at the model's dimensions.

Weights are seeded per (MoE layer, expert) so that every rank and the single-process reference build the
same expert without exchanging anything, or loaded from a safetensors checkpoint in the Hugging Face layout
(`model.layers.{i}.mlp.experts.{e}.{gate,up,down}_proj.weight`, Mixtral's `block_sparse_moe.experts.{e}.w1/w3/w2`,
sharded checkpoints through `model.safetensors.index.json`; i = the model's 1-based layer number - 1).

    w_in   [hidden, 2 x expert_hidden] for SwiGLU (gate | up), [hidden, expert_hidden] for MLP
    w_out  [expert_hidden, hidden]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moeplace.errors import InputError
from moeplace.placement.schema import ModelSpec
from moeplace.runtime.deps import import_torch

torch = import_torch()
F = torch.nn.functional

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass(frozen=True, eq=False)
class Expert:
    moe_layer: int
    expert: int
    activation: str
    w_in: Any
    w_out: Any

    @property
    def expert_hidden(self) -> int:
        return int(self.w_out.shape[0])

    def __call__(self, x):
        return expert_forward(x, self.w_in, self.w_out, self.activation)


def expert_forward(x, w_in, w_out, activation: str):
    """y [n, hidden] = expert(x [n, hidden]) in x's dtype (fp32 accumulation inside the matmuls)."""
    h = x @ w_in
    if activation == "swiglu":
        eh = w_out.shape[0]
        a = F.silu(h[:, :eh]) * h[:, eh:]
    else:
        a = F.gelu(h)
    return a @ w_out


def expert_seed(seed: int, moe_layer: int, expert: int) -> int:
    return int(np.random.SeedSequence([seed, moe_layer, expert, 0xE7]).generate_state(1)[0])


def seeded_expert(model: ModelSpec, moe_layer: int, expert: int, *, seed: int, dtype, device) -> Expert:
    """Gaussian weights scaled by 1/sqrt(fan_in), drawn in fp32 on the CPU (identical on every machine)."""
    gen = torch.Generator(device="cpu").manual_seed(expert_seed(seed, moe_layer, expert))
    H, EH = model.hidden, model.expert_hidden
    n_in = 2 * EH if model.activation == "swiglu" else EH
    w_in = torch.randn(H, n_in, generator=gen) / H ** 0.5
    w_out = torch.randn(EH, H, generator=gen) / EH ** 0.5
    return Expert(moe_layer, expert, model.activation, w_in.to(device=device, dtype=dtype),
                  w_out.to(device=device, dtype=dtype))


_PATTERNS = (
    ("model.layers.{i}.mlp.experts.{e}.gate_proj.weight", "model.layers.{i}.mlp.experts.{e}.up_proj.weight",
     "model.layers.{i}.mlp.experts.{e}.down_proj.weight"),
    ("model.layers.{i}.block_sparse_moe.experts.{e}.w1.weight", "model.layers.{i}.block_sparse_moe.experts.{e}.w3.weight",
     "model.layers.{i}.block_sparse_moe.experts.{e}.w2.weight"),
)
_MLP_PATTERNS = (("model.layers.{i}.mlp.experts.{e}.up_proj.weight", "model.layers.{i}.mlp.experts.{e}.down_proj.weight"),)


def _weight_map(path: Path) -> dict[str, Path]:
    """Tensor name -> file, for one .safetensors file or a folder / index of shards."""
    if path.is_dir():
        index = path / "model.safetensors.index.json"
        files = sorted(path.glob("*.safetensors"))
        if index.is_file():
            data = json.loads(index.read_text())
            return {k: path / v for k, v in data.get("weight_map", {}).items()}
    elif path.name.endswith(".index.json"):
        data = json.loads(path.read_text())
        return {k: path.parent / v for k, v in data.get("weight_map", {}).items()}
    else:
        files = [path]
    if not files:
        raise InputError("no .safetensors files", source=str(path))
    from safetensors import safe_open

    out: dict[str, Path] = {}
    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            out.update({k: f for k in fh.keys()})
    return out


def load_expert(path: str | Path, model: ModelSpec, moe_layer: int, expert: int, *, dtype, device) -> Expert:
    """One expert from a safetensors checkpoint; Hugging Face stores [out, in], transposed here."""
    try:
        from safetensors import safe_open
    except ImportError:
        raise InputError("loading weights needs the safetensors package: install moeplace[runtime]") from None
    p = Path(path)
    if not p.exists():
        raise InputError("weights file not found", source=str(p))
    wmap = _weight_map(p)
    i = model.moe_layer_numbers[moe_layer] - 1
    patterns = _PATTERNS if model.activation == "swiglu" else _MLP_PATTERNS
    for pat in patterns:
        names = [n.format(i=i, e=expert) for n in pat]
        if all(n in wmap for n in names):
            break
    else:
        raise InputError(f"no weights for expert {expert} of layer {i} (looked for {patterns[0][0].format(i=i, e=expert)} "
                         f"and the Mixtral names)", source=str(p))
    mats = []
    for n in names:
        with safe_open(str(wmap[n]), framework="pt") as fh:
            mats.append(fh.get_tensor(n))
    H, EH = model.hidden, model.expert_hidden
    want = [(EH, H)] * (len(names) - 1) + [(H, EH)]
    for n, m, shape in zip(names, mats, want):
        if tuple(m.shape) != shape:
            raise InputError(f"{n} has shape {tuple(m.shape)}, the model needs {shape}", source=str(p))
    w_in = torch.cat([m.t() for m in mats[:-1]], dim=1)
    return Expert(moe_layer, expert, model.activation, w_in.to(device=device, dtype=dtype).contiguous(),
                  mats[-1].t().to(device=device, dtype=dtype).contiguous())
