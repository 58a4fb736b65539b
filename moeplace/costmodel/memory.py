"""Memory per GPU: weights, KV cache at the workload's context and batch, and transfer/activation buffers.

For each GPU of one instance (arrays `_G`, bytes):

    weights   its experts; the attention of every layer it runs (chain: its stage's layers; ep: all
              layers); the dense MLPs where they run; the embedding and output head (chain: on stage 0)
    kv        K and V of `seq_len` tokens for each sequence whose home it is, at every layer it runs
              attention for (sequences spread evenly over a stage's GPUs, or over an ep instance's GPUs)
    buffers   the tokens it handles per micro-batch x (4 token vectors + 2 MLP-hidden rows), doubled when
              transfers overlap compute (double buffering)

A plan fits when the largest GPU total stays within `memory_gb - reserve_gb`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from moeplace.costmodel.compute import (
    attention_shape,
    expert_shape,
    kv_bytes_per_token_layer,
)
from moeplace.costmodel.deployment import Deployment, Options, Workload
from moeplace.costmodel.profile import HardwareProfile
from moeplace.costmodel.transfers import stage_gpus

GB = 1e9


@dataclass(frozen=True, eq=False)
class Memory:
    weights_G: np.ndarray
    kv_G: np.ndarray
    buffers_G: np.ndarray
    limit_gb: float
    capacity_gb: float

    @property
    def total_G(self) -> np.ndarray:
        return self.weights_G + self.kv_G + self.buffers_G

    @property
    def max_gb(self) -> float:
        return float(self.total_G.max() / GB)

    @property
    def fits(self) -> bool:
        return self.max_gb <= self.limit_gb

    def breakdown_gb(self) -> dict[str, float]:
        g = int(np.argmax(self.total_G))
        return {"weights": float(self.weights_G[g] / GB), "kv_cache": float(self.kv_G[g] / GB),
                "buffers": float(self.buffers_G[g] / GB), "total": float(self.total_G[g] / GB)}


def _layout(dep: Deployment, options: Options) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(experts_G, attention layers_G, dense MLPs_G, sequence share per attention layer_G) of one instance."""
    p = dep.problem
    G = p.num_gpus
    model = p.model
    D = len(model.dense_layers)
    experts = np.bincount(np.asarray(dep.item_gpu_I), minlength=G).astype(np.float64)
    if not dep.flow_model.pipelined:
        return experts, np.full(G, float(model.num_layers)), np.full(G, float(D)), np.full(G, 1.0 / G)
    layers = np.zeros(G)
    dense = np.zeros(G)
    share = np.zeros(G)
    stages = stage_gpus(p, dep.item_gpu_I)
    per_stage = np.bincount(dep.dense_stage_D(options), minlength=len(stages))
    for ml, S in enumerate(stages):
        layers[S] += 1 + per_stage[ml]
        dense[S] += per_stage[ml]
        share[S] = np.maximum(share[S], 1.0 / S.size)
    return experts, layers, dense, share


def memory(profile: HardwareProfile, dep: Deployment, workload: Workload, options: Options,
           micro_tokens: float) -> Memory:
    """Memory of every GPU of the busiest instance at this workload, `micro_tokens` tokens per micro-batch.

    With tensor-parallel attention (ep_attention `tp`) a GPU holds 1/G of every attention, dense MLP and
    KV cache, for all the instance's sequences."""
    model = dep.problem.model
    b = model.dtype_bytes
    experts, att_layers, dense, share = _layout(dep, options)
    tp = dep.tensor_parallel
    _, seqs = dep.active(workload)
    w_exp = expert_shape(model).weight_bytes
    w_att = attention_shape(model).weight_bytes / tp
    w_dense = expert_shape(model, options.dense_ffn_hidden or model.expert_hidden).weight_bytes / tp
    w_embed = 2.0 * options.vocab_size * model.hidden * b
    embed = np.zeros_like(experts)
    pipelined = dep.flow_model.pipelined
    embed[stage_gpus(dep.problem, dep.item_gpu_I)[0] if pipelined else slice(None)] = w_embed
    weights = experts * w_exp + att_layers * w_att + dense * w_dense + embed
    seq_here = seqs if tp > 1 else np.ceil(seqs * share - 1e-9) * (att_layers > 0)
    kv = seq_here * workload.seq_len * att_layers * kv_bytes_per_token_layer(model) / tp
    resident = experts if pipelined else experts / model.num_moe_layers
    att_tokens = 1.0 if tp > 1 else share
    tokens_here = micro_tokens * np.maximum(att_tokens, resident * model.top_k / model.num_experts)
    per_token = (4 * model.hidden + 2 * max(model.expert_hidden, options.dense_ffn_hidden or 0)) * b
    buffers = tokens_here * per_token * (2.0 if options.overlap else 1.0)
    return Memory(weights_G=weights, kv_G=kv, buffers_G=buffers, limit_gb=profile.memory_gb - options.reserve_gb,
                  capacity_gb=profile.memory_gb)


def max_batch(profile: HardwareProfile, dep: Deployment, workload: Workload, options: Options,
              micro_tokens_of: Callable[[Workload], float], limit: int = 1 << 24) -> int:
    """The largest batch (sequences, all instances) that fits at this context; 0 when not even one does."""
    def fits(batch: int) -> bool:
        w = Workload(workload.phase, batch, workload.seq_len)
        return memory(profile, dep, w, options, micro_tokens_of(w)).fits

    if not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= limit and fits(hi):
        lo, hi = hi, hi * 2
    if hi > limit:
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo
