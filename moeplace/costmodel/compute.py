"""Compute time of the blocks of a layer: an expert MLP, an attention, a dense MLP.

Each block is a roofline with a fixed part:

    t(n) = kernel_overhead_us + max(bytes(n) / HBM, flops(n) / compute)      (0 when n = 0)

with HBM and compute the profile's achievable rates. Where the profile carries a measured expert curve for
the model's expert shape, the expert time is that curve instead: piecewise linear in log-log between
points, flat below the first point (weight-bound), and scaled with FLOPs beyond the last (compute-bound).
`n` is a float array of tokens; every function is vectorised and returns microseconds of the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moeplace.costmodel.profile import HardwareProfile
from moeplace.placement.schema import ModelSpec


@dataclass(frozen=True)
class BlockShape:
    """FLOPs and HBM bytes of one block: flops = flops_per_token * n (+ attention's context term),
    bytes = weight_bytes + act_bytes_per_token * n."""

    weight_bytes: float
    flops_per_token: float
    act_bytes_per_token: float


def expert_shape(model: ModelSpec, ffn_hidden: int | None = None) -> BlockShape:
    """One expert MLP (or a dense MLP of `ffn_hidden`): weights, 2 FLOPs per weight per token, in + out."""
    mats = 3 if model.activation == "swiglu" else 2
    params = mats * model.hidden * (ffn_hidden or model.expert_hidden)
    b = model.dtype_bytes
    return BlockShape(weight_bytes=params * b, flops_per_token=2.0 * params,
                      act_bytes_per_token=2.0 * model.hidden * b)


def attention_shape(model: ModelSpec) -> BlockShape:
    """Q, K, V and output projections (grouped-query K/V), without the score term."""
    kv = model.num_kv_heads or model.num_heads
    q = model.num_heads * model.head_dim
    params = model.hidden * (2 * q + 2 * kv * model.head_dim)
    b = model.dtype_bytes
    return BlockShape(weight_bytes=params * b, flops_per_token=2.0 * params,
                      act_bytes_per_token=2.0 * model.hidden * b)


def kv_bytes_per_token_layer(model: ModelSpec) -> float:
    """K and V of one token at one layer: 2 x kv heads x head dim x dtype bytes (65,536 B in the seed)."""
    kv = model.num_kv_heads or model.num_heads
    return 2.0 * kv * model.head_dim * model.dtype_bytes


def roofline_us(profile: HardwareProfile, weight_bytes: float, bytes_: np.ndarray, flops: np.ndarray,
                n: np.ndarray) -> np.ndarray:
    hbm = profile.hbm_tbps * 1e12
    peak = profile.bf16_tflops * 1e12
    t = profile.kernel_overhead_us + 1e6 * np.maximum((weight_bytes + bytes_) / hbm, flops / peak)
    return np.where(np.asarray(n) > 0, t, 0.0)


def _curve_matches(profile: HardwareProfile, model: ModelSpec) -> bool:
    d = profile.expert_dims
    return (bool(profile.expert_curve) and d is not None and d.hidden == model.hidden
            and d.expert_hidden == model.expert_hidden and d.activation == model.activation and d.dtype == model.dtype)


def expert_us(profile: HardwareProfile, model: ModelSpec, n: np.ndarray) -> np.ndarray:
    """One expert MLP on n tokens (float array), microseconds: the measured curve if it fits, else roofline."""
    n = np.asarray(n, dtype=np.float64)
    if _curve_matches(profile, model):
        pts = sorted(profile.expert_curve, key=lambda p: p.x)
        x = np.array([max(p.x, 1.0) for p in pts])
        y = np.array([p.us for p in pts])
        nn = np.maximum(n, 1.0)
        inner = np.exp(np.interp(np.log(np.clip(nn, x[0], x[-1])), np.log(x), np.log(y)))
        t = np.where(nn > x[-1], y[-1] * nn / x[-1], inner)
        return np.where(n > 0, t, 0.0)
    s = expert_shape(model)
    return roofline_us(profile, s.weight_bytes, s.act_bytes_per_token * n, s.flops_per_token * n, n)


def dense_mlp_us(profile: HardwareProfile, model: ModelSpec, n: np.ndarray, ffn_hidden: int) -> np.ndarray:
    s = expert_shape(model, ffn_hidden)
    n = np.asarray(n, dtype=np.float64)
    return roofline_us(profile, s.weight_bytes, s.act_bytes_per_token * n, s.flops_per_token * n, n)


def attention_flops(model: ModelSpec, n: np.ndarray, context: float, phase: str) -> np.ndarray:
    """Projections plus scores (QK^T and AV: 4 x heads x head_dim per key); prefill is causal (mean (S+1)/2 keys)."""
    keys = context if phase == "decode" else (context + 1) / 2.0
    s = attention_shape(model)
    n = np.asarray(n, dtype=np.float64)
    return n * (s.flops_per_token + 4.0 * model.num_heads * model.head_dim * keys)


def attention_us(profile: HardwareProfile, model: ModelSpec, n: np.ndarray, context: float, phase: str,
                 heads_share: float = 1.0) -> np.ndarray:
    """One attention layer for n tokens: decode reads each token's whole KV cache (context keys); prefill
    writes K and V and reads them from on-chip memory (flash attention). `heads_share` < 1 for a shard."""
    n = np.asarray(n, dtype=np.float64)
    s = attention_shape(model)
    kv = kv_bytes_per_token_layer(model)
    kv_bytes = n * kv * (context if phase == "decode" else 2.0)
    flops = attention_flops(model, n, context, phase) * heads_share
    return roofline_us(profile, s.weight_bytes * heads_share, (kv_bytes + s.act_bytes_per_token * n) * heads_share,
                       flops, n)


def token_flops(model: ModelSpec, context: float, phase: str, dense_ffn_hidden: int) -> float:
    """Useful FLOPs of one token through the whole model (the numerator of MFU): attention at every layer,
    k routed experts and the shared experts at every MoE layer, the dense MLP at every dense layer."""
    att = float(attention_flops(model, np.array(1.0), context, phase))
    exp = expert_shape(model).flops_per_token
    dense = expert_shape(model, dense_ffn_hidden).flops_per_token
    L, D = model.num_moe_layers, len(model.dense_layers)
    return model.num_layers * att + L * (model.top_k + model.num_shared_experts) * exp + D * dense
