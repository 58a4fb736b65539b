"""The cost model's front door: `prepare` a deployment once per phase, then `predict` any workload.

    prep = prepare(profile, deployment, options, phase)      # transfers, link loads, loads: the slow part
    pred = predict(prep, workload)                           # vectorised arithmetic, milliseconds

Throughput and latency per phase (n = tokens per step of the busiest instance, M micro-batches):

    decode    a sequence's next token waits for its previous one, so the inter-token latency is
              max(pass, M x tick) and the instance makes n tokens per latency (M splits the sequences)
    prefill   prompts are independent, so a full pipeline takes a micro-batch per tick: tokens/s is
              (n / M) / tick and the batch's latency pass + (M - 1) x tick (M chunks every prompt)

chain picks M among the powers of two up to the number of stages (or `Options.micro_batches`): the most
tokens/s, and among counts within 1% of it the lowest latency.

MFU = useful FLOPs per token (attention, k experts, dense MLPs) x tokens/s / (all GPUs x nominal peak).
Utilizations are mean loads at the predicted tokens/s over achievable bandwidth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from moeplace.costmodel.comm import Rates, nvlink_utilization_N
from moeplace.costmodel.compute import token_flops
from moeplace.costmodel.deployment import (
    Deployment,
    Options,
    Workload,
    nominal_peak_tflops,
)
from moeplace.costmodel.links import LinkView, link_view
from moeplace.costmodel.memory import Memory, max_batch, memory
from moeplace.costmodel.profile import HardwareProfile
from moeplace.costmodel.timing import Timing, chain_timing, ep_timing
from moeplace.costmodel.transfers import (
    Transfers,
    chain_with_attention,
    flow_transfers,
    stage_gpus,
    tp_allreduce_transfers,
)
from moeplace.placement.cost import evaluate
from moeplace.placement.traffic import Traffic


@dataclass(frozen=True, eq=False)
class Prepared:
    profile: HardwareProfile
    deployment: Deployment
    options: Options
    phase: str
    transfers: Transfers
    rates: Rates
    links: LinkView
    load_share_LE: np.ndarray
    gpu_LE: np.ndarray
    stage_sizes_L: np.ndarray
    in_stage_GL: np.ndarray
    dense_stage_D: np.ndarray
    dense_ffn_hidden: int
    flow_cross_node_bytes: float
    flow_bytes_by_tier: tuple[float, ...]
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def problem(self):
        return self.deployment.problem


def prepare(profile: HardwareProfile, dep: Deployment, options: Options, phase: str,
            ep_traffic: Traffic | None = None) -> Prepared:
    """Everything about a deployment that does not depend on the batch: transfers, link loads, loads."""
    p = dep.problem
    model = p.model
    L, E = model.num_moe_layers, model.num_experts
    pipelined = dep.flow_model.pipelined
    dense_stage = dep.dense_stage_D(options) if pipelined else np.zeros(0, dtype=np.int64)
    if pipelined and options.attention_hop:
        tr = chain_with_attention(p, dep.item_gpu_I, dep.stats, dense_stage_D=dense_stage, ep_traffic=ep_traffic)
        if phase == "prefill":
            tr = tr.scaled_step("output", 0.0)
    elif dep.ep_attention == "tp":
        tr = tp_allreduce_transfers(p)
    else:
        tr = flow_transfers(p, dep.item_gpu_I)
    stages = stage_gpus(p, dep.item_gpu_I)
    in_stage = np.zeros((p.num_gpus, L), dtype=bool)
    for ml, S in enumerate(stages):
        in_stage[S, ml] = True
    stats = dep.stats
    cost = evaluate(p, dep.item_gpu_I)
    return Prepared(profile=profile, deployment=dep, options=options, phase=phase, transfers=tr,
                    rates=Rates.of(profile, p), links=link_view(profile, p, tr),
                    load_share_LE=stats.load_LE / max(stats.num_tokens, 1),
                    gpu_LE=np.asarray(dep.item_gpu_I).reshape(L, E), stage_sizes_L=np.array([s.size for s in stages]),
                    in_stage_GL=in_stage, dense_stage_D=dense_stage,
                    dense_ffn_hidden=options.dense_ffn_hidden or model.expert_hidden,
                    flow_cross_node_bytes=cost.cross_node_bytes, flow_bytes_by_tier=cost.bytes_by_tier)


@dataclass(frozen=True, eq=False)
class Prediction:
    deployment: str
    flow: str
    profile: str
    workload: Workload
    options: Options
    gpus: int
    gpus_per_instance: int
    instances: int
    active_instances: int
    micro_batches: int
    micro_tokens: float
    tokens_per_s: float
    latency_us: float
    timing: Timing
    mfu: float
    bottleneck: str
    busy_fraction: float
    memory: Memory
    max_batch: int
    transfers: Transfers
    flow_cross_node_bytes: float
    nic_util_NR: np.ndarray
    link_util_X: np.ndarray
    nvlink_util_N: np.ndarray
    links: LinkView

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.tokens_per_s / self.gpus

    @property
    def cross_node_bytes_per_token(self) -> float:
        return self.transfers.cross_node_bytes

    @property
    def peak_nic_util(self) -> float:
        return float(self.nic_util_NR.max(initial=0.0))

    @property
    def peak_link_util(self) -> float:
        return float(self.link_util_X.max(initial=0.0))

    @property
    def peak_nvlink_util(self) -> float:
        return float(self.nvlink_util_N.max(initial=0.0))

    @property
    def comm_share_of_pass(self) -> float:
        t = self.timing
        return float(t.comm_us_L.sum() / t.pass_us) if t.pass_us > 0 else 0.0


def _micro_candidates(limit: int, stages: int, fixed: int | None) -> list[int]:
    if fixed is not None:
        return [max(1, min(fixed, limit))]
    top = max(1, min(limit, stages))
    return sorted({1 << i for i in range(int(math.log2(top)) + 1)} | {top})


THROUGHPUT_TIE = 0.01
"""Micro-batch counts within 1% of the best throughput count as ties; the lowest latency among them wins."""


def _chain(prep: Prepared, w: Workload, seqs: int) -> tuple[Timing, int, float, float, float]:
    """(timing, micro-batches, tokens per micro-batch, tokens/s of the instance, latency)."""
    o = prep.options
    stages = int(prep.stage_sizes_L.size)
    found = []
    limit = seqs if w.phase == "decode" else seqs * w.seq_len
    for M in _micro_candidates(limit, stages, o.micro_batches):
        if w.phase == "decode":
            seqs_m = math.ceil(seqs / M)
            t = chain_timing(prep, w, seqs_m, float(seqs_m), 1, o.overlap and M >= 2)
            latency = max(t.pass_us, M * t.tick_us)
            found.append((t, M, float(seqs_m), seqs / latency * 1e6, latency))
        else:
            tokens = seqs * w.seq_len / M
            t = chain_timing(prep, w, seqs, tokens, M, o.overlap)
            found.append((t, M, tokens, tokens / t.tick_us * 1e6, t.pass_us + (M - 1) * t.tick_us))
    best = max(f[3] for f in found)
    return min((f for f in found if f[3] >= best * (1 - THROUGHPUT_TIE)), key=lambda f: (f[4], f[1]))


def predict(prep: Prepared, w: Workload) -> Prediction:
    if w.phase != prep.phase:
        raise ValueError(f"prepared for {prep.phase}, asked for {w.phase}")
    dep, o, prof = prep.deployment, prep.options, prep.profile
    model = dep.problem.model
    active, seqs = dep.active(w)
    if dep.flow_model.pipelined:
        t, M, micro, rate, latency = _chain(prep, w, seqs)
        cycle = latency if w.phase == "decode" else t.tick_us
        busy = t.busy_us * (M if w.phase == "decode" else 1) / cycle
    else:
        tokens = float(seqs * w.tokens_per_sequence)
        t = ep_timing(prep, w, seqs, tokens, o.overlap)
        M, micro, latency = (2 if o.overlap and seqs >= 2 else 1), tokens, t.pass_us
        rate = tokens / t.pass_us * 1e6
        busy = t.busy_us / t.pass_us
    total_rate = rate * w.batch / seqs
    peak = nominal_peak_tflops(prof, dep) * 1e12
    mfu = token_flops(model, w.seq_len, w.phase, prep.dense_ffn_hidden) * total_rate / (dep.num_gpus * peak)
    per_us = rate / 1e6
    nic = prep.links.nic_us_per_token_NR * per_us
    link = prep.links.link_us_per_token_X * per_us
    nvl = nvlink_utilization_N(prep.transfers, prep.rates, per_us)
    mem = memory(prof, dep, w, o, micro)
    key = ("max_batch", dep.instances, w.phase, w.seq_len)
    if key not in prep.cache:
        prep.cache[key] = max_batch(prof, dep, w, o, lambda x: _micro_tokens(dep, x))
    fit_max = prep.cache[key]
    return Prediction(deployment=dep.name, flow=dep.flow, profile=prof.name, workload=w, options=o, gpus=dep.num_gpus,
                      gpus_per_instance=dep.gpus_per_instance, instances=dep.instances, active_instances=active,
                      micro_batches=M, micro_tokens=micro, tokens_per_s=total_rate, latency_us=latency, timing=t,
                      mfu=mfu, bottleneck=_bottleneck(dep.flow_model.pipelined, w, t, M, latency), busy_fraction=min(busy, 1.0),
                      memory=mem, max_batch=fit_max, transfers=prep.transfers,
                      flow_cross_node_bytes=prep.flow_cross_node_bytes, nic_util_NR=nic, link_util_X=link,
                      nvlink_util_N=nvl, links=prep.links)


def _micro_tokens(dep: Deployment, w: Workload) -> float:
    """Tokens per micro-batch for the memory check: a pipelined flow (chain) splits into as many
    micro-batches as stages."""
    _, seqs = dep.active(w)
    tokens = seqs * w.tokens_per_sequence
    if dep.flow_model.pipelined:
        return float(math.ceil(tokens / min(tokens, dep.problem.model.num_moe_layers)))
    return float(tokens)


def _bottleneck(pipelined: bool, w: Workload, t: Timing, M: int, latency: float) -> str:
    if pipelined and w.phase == "decode" and t.pass_us >= M * t.tick_us:
        return f"one token's pass through {t.attention_us_L.size} stages ({M} micro-batches do not fill the pipeline)"
    name = max(t.terms, key=t.terms.get)
    where = {"compute": t.hottest, "compute+transfers": "a stage without overlap"}.get(name, "")
    return f"{name}" + (f": {where}" if where else "")
