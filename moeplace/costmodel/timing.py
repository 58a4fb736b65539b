"""Time of one step: the chain pipeline (expert per GPU) and classic expert parallelism, per flow model.

Both take a prepared deployment (`moeplace.costmodel.model.Prepared`), the workload and the tokens of one
micro-batch, and return a `Timing`:

chain (pipeline; stage l = the GPUs holding MoE layer l's experts)
    GPU work per tick   W_g = sum of its experts' times + attention of each stage it belongs to
                        (+ the dense layers its stage runs); the hottest expert sets its stage's pace
    stage time          C_l = max over stage l's GPUs of (attention + its layer-l experts)
    pass (latency)      sum over layers of C_l + the layer's transfer steps (never overlapped)
    tick (throughput)   overlap on and >= 2 micro-batches: max(max_g W_g, busiest node's NICs,
                        busiest node's NVLink, busiest link), each for all layers at once;
                        otherwise max(max_l (C_l + X_l), the same contention terms)

ep (every GPU runs every layer, layer after layer; attention data-parallel over the instance's GPUs)
    layer time          C_l = attention of the busiest home + the busiest GPU's experts of layer l,
                        X_l = dispatch + combine; overlap on: the better of C_l + X_l and two
                        micro-batches (DeepSeek-style) C_h + X_h + max(C_h, X_h) at half the tokens
    step                the dense layers + the sum of the layer times
    tensor-parallel     attention and dense MLPs split over the instance's G GPUs (1/G of the weights,
    attention           FLOPs and KV cache each, all tokens on every GPU); X_l = two all-reduces
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from moeplace.costmodel.comm import step_us, tick_us
from moeplace.costmodel.compute import attention_us, dense_mlp_us, expert_us


@dataclass(frozen=True, eq=False)
class Timing:
    pass_us: float
    tick_us: float
    attention_us_L: np.ndarray
    expert_us_L: np.ndarray
    comm_us_L: np.ndarray
    dense_us: float
    terms: dict[str, float]
    busy_us: float
    expert_balance: float
    hottest: str


def _attention_tokens(phase: str, seqs: int, seq_len: int, gpus: int, chunks: int = 1) -> float:
    """Tokens on the busiest home GPU: whole sequences per GPU (a sequence's KV cache has one home)."""
    per_gpu = math.ceil(seqs / gpus)
    return float(per_gpu if phase == "decode" else per_gpu * seq_len / chunks)


def chain_timing(prep, w, seqs_micro: int, tokens_micro: float, chunks: int, overlap: bool) -> Timing:
    """One micro-batch of `tokens_micro` tokens (`seqs_micro` sequences, prompts cut in `chunks`)."""
    p, prof, model = prep.problem, prep.profile, prep.problem.model
    L, E = model.num_moe_layers, model.num_experts
    S_l = prep.stage_sizes_L
    a_l = np.array([_attention_tokens(w.phase, seqs_micro, w.seq_len, int(s), chunks) for s in S_l])
    att_one = attention_us(prof, model, a_l, w.seq_len, w.phase)
    att_l = att_one + model.num_shared_experts * expert_us(prof, model, a_l)
    dense_l = np.zeros(L)
    for d in prep.dense_stage_D:
        dense_l[d] += att_one[d] + dense_mlp_us(prof, model, a_l[d], prep.dense_ffn_hidden)
    t_LE = expert_us(prof, model, tokens_micro * prep.load_share_LE)
    G = p.num_gpus
    per_gpu_layer = np.zeros((G, L))
    np.add.at(per_gpu_layer, (prep.gpu_LE, np.repeat(np.arange(L)[:, None], E, axis=1)), t_LE)
    in_stage = prep.in_stage_GL
    stage_work_GL = per_gpu_layer + in_stage * (att_l + dense_l)[None, :]
    work_G = stage_work_GL.sum(axis=1)
    stage_exp = np.where(in_stage, per_gpu_layer, -np.inf).max(axis=0)
    comm_l = step_us(prep.transfers, prep.rates, tokens_micro).sum(axis=0)
    C_l = att_l + dense_l + stage_exp
    pass_us = float((C_l + comm_l).sum())
    net, nvl = tick_us(prep.transfers, prep.rates, tokens_micro)
    links = tokens_micro * prep.links.busiest_us_per_token
    g_hot = int(np.argmax(work_G))
    terms = {"compute": float(work_G.max()), "network": net, "nvlink": nvl, "links": links}
    if not overlap:
        terms["compute+transfers"] = float((C_l + comm_l).max())
    mean_l = np.where(in_stage, per_gpu_layer, 0).sum(axis=0) / np.maximum(in_stage.sum(axis=0), 1)
    hot_layer = int(np.argmax(np.where(in_stage[g_hot], stage_work_GL[g_hot], -np.inf)))
    return Timing(pass_us=pass_us, tick_us=max(terms.values()), attention_us_L=att_l + dense_l,
                  expert_us_L=stage_exp, comm_us_L=comm_l, dense_us=float(dense_l.sum()), terms=terms,
                  busy_us=float(work_G.mean()), expert_balance=float(np.mean(mean_l / np.maximum(stage_exp, 1e-12))),
                  hottest=f"GPU {g_hot} (stage of MoE layer {hot_layer})")


def _ep_parts(prep, w, seqs: int, tokens: float) -> dict:
    """Per-layer parts of one ep step: busiest attention, experts per GPU [G, L], transfers [L], dense."""
    p, prof, model = prep.problem, prep.profile, prep.problem.model
    L, E, D = model.num_moe_layers, model.num_experts, len(model.dense_layers)
    G, tp = p.num_gpus, prep.deployment.tensor_parallel
    if tp > 1:
        a, a_mean, share = tokens, tokens, 1.0 / tp
    else:
        a, a_mean, share = _attention_tokens(w.phase, seqs, w.seq_len, G), tokens / G, 1.0
    att = float(attention_us(prof, model, a, w.seq_len, w.phase, heads_share=share)
                + model.num_shared_experts * expert_us(prof, model, a) * share)
    att_mean = float(attention_us(prof, model, a_mean, w.seq_len, w.phase, heads_share=share))
    ffn = max(1, round(prep.dense_ffn_hidden * share))
    dense_one = att + float(dense_mlp_us(prof, model, a, ffn))
    dense_comm = 0.0
    if tp > 1 and D:
        dense_comm = 2 * float(step_us(prep.transfers, prep.rates, tokens)[0, 0])
    t_LE = expert_us(prof, model, tokens * prep.load_share_LE)
    per = np.zeros((G, L))
    np.add.at(per, (prep.gpu_LE, np.repeat(np.arange(L)[:, None], E, axis=1)), t_LE)
    comm = step_us(prep.transfers, prep.rates, tokens).sum(axis=0)
    return {"att": att, "att_mean": att_mean, "per": per, "comm": comm, "dense": D * (dense_one + dense_comm)}


def ep_timing(prep, w, seqs: int, tokens: float, overlap: bool) -> Timing:
    """One step of an instance holding `seqs` sequences (`tokens` tokens); with overlap on, the better of
    one batch and two micro-batches per layer (a scheduler splits only where it pays)."""
    model = prep.problem.model
    L = model.num_moe_layers
    f = _ep_parts(prep, w, seqs, tokens)
    exp_l = f["per"].max(axis=0)
    C_l = f["att"] + exp_l
    layer = C_l + f["comm"]
    if overlap and seqs >= 2:
        h = _ep_parts(prep, w, math.ceil(seqs / 2), tokens / 2)
        C_h = h["att"] + h["per"].max(axis=0)
        layer = np.minimum(layer, C_h + h["comm"] + np.maximum(C_h, h["comm"]))
    step = f["dense"] + float(layer.sum())
    terms = {"compute": f["dense"] + float(C_l.sum()), "transfers": float(f["comm"].sum())}
    busy = f["dense"] + float((f["att_mean"] + f["per"].mean(axis=0)).sum())
    balance = float(np.mean(f["per"].mean(axis=0) / np.maximum(exp_l, 1e-12)))
    hot = np.argmax(f["per"], axis=0)
    g_hot = int(np.bincount(hot, minlength=f["per"].shape[0]).argmax())
    return Timing(pass_us=step, tick_us=step, attention_us_L=np.full(L, f["att"]), expert_us_L=exp_l,
                  comm_us_L=f["comm"], dense_us=f["dense"], terms=terms, busy_us=busy, expert_balance=balance,
                  hottest=f"GPU {g_hot} (hottest in {int((hot == g_hot).sum())} of {L} layers)")
