"""Per-token transfer volumes of a deployment by step, layer, tier and node: the cost model's traffic.

Crossings per tier come from the objective's kernel (`moeplace.placement.cost.tier_counts`), so node-level
dedup and tiers are exactly the objective's; this module only says *where* each crossing happens:

    bytes_SLT    float [steps, L, tiers]  bytes per token through the model, by step and MoE layer
    egress_SLN   float [steps, L, N]      network bytes per token leaving node n
    ingress_SLN  float [steps, L, N]      network bytes per token entering node n
    nvlink_SLN   float [steps, L, N]      NVLink bytes per token inside node n
    flow_*_F     the network crossings as GPU-to-GPU flows [F] (step, source GPU, first target GPU on the
                 remote node, bytes per token), for routing over the fabric's links

A crossing to a remote node is charged to the sending and the receiving node; an NVLink transfer to the
node it happens on (the source's node, or the remote node where a deduplicated vector fans out). A token
home (HOME, uniform over the instance's GPUs) sends from every node with probability 1 / N.

`flow_transfers` is the flow model as the objective counts it. `chain_with_attention` is the chain flow
plus attention: attention of MoE layer l runs on the GPUs of stage l (the GPUs holding layer l's experts),
where the sequence's KV cache lives, so per token and layer the transfers are
    dispatch  home (uniform over stage l's GPUs) -> the k experts of layer l   (node dedup as configured)
    combine   secondary experts -> the primary (the chain flow's combine, as the objective counts it)
    return    primary of layer l -> home of stage l+1 (of stage 0 after the last layer: the output head)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from moeplace.placement.cost import dedup_columns, home_tier_dist, tier_counts
from moeplace.placement.flows import build_traffic, get_flow
from moeplace.placement.problem import Problem
from moeplace.placement.traffic import HOME, PAD, Traffic
from moeplace.topologies.base import NUM_TIERS, TIER_LEAF, TIER_NVLINK
from moeplace.traces.stats import RoutingStats

@dataclass(frozen=True, eq=False)
class Transfers:
    steps: tuple[str, ...]
    bytes_SLT: np.ndarray
    egress_SLN: np.ndarray
    ingress_SLN: np.ndarray
    nvlink_SLN: np.ndarray
    flow_step_F: np.ndarray
    flow_src_gpu_F: np.ndarray
    flow_dst_gpu_F: np.ndarray
    flow_bytes_F: np.ndarray
    gpus_per_node: int
    accounting: str

    @property
    def node_NN(self) -> np.ndarray:
        """float [N, N]: network bytes per token from node a to node b."""
        N = self.egress_SLN.shape[2]
        G = self.gpus_per_node
        key = (self.flow_src_gpu_F // G) * N + self.flow_dst_gpu_F // G
        return np.bincount(key, weights=self.flow_bytes_F, minlength=N * N).reshape(N, N)

    @property
    def bytes_by_tier(self) -> np.ndarray:
        return self.bytes_SLT.sum(axis=(0, 1))

    @property
    def cross_node_bytes(self) -> float:
        return float(self.bytes_SLT[:, :, TIER_LEAF:].sum())

    def scaled_step(self, step: str, factor: float) -> Transfers:
        """A copy with one step scaled, e.g. the output hop that prefill makes once per prompt, not per token."""
        if step not in self.steps or factor == 1.0:
            return self
        s = self.steps.index(step)
        arrays = [a.copy() for a in (self.bytes_SLT, self.egress_SLN, self.ingress_SLN, self.nvlink_SLN)]
        for a in arrays:
            a[s] *= factor
        fb = np.where(self.flow_step_F == s, self.flow_bytes_F * factor, self.flow_bytes_F)
        return Transfers(self.steps, *arrays, flow_step_F=self.flow_step_F, flow_src_gpu_F=self.flow_src_gpu_F,
                         flow_dst_gpu_F=self.flow_dst_gpu_F, flow_bytes_F=fb, gpus_per_node=self.gpus_per_node,
                         accounting=self.accounting)


class _Acc:
    """Accumulates attributed crossings into the arrays of `Transfers`."""

    def __init__(self, problem: Problem, steps: tuple[str, ...]) -> None:
        self.p = problem
        self.steps = steps
        S, L, N = len(steps), problem.model.num_moe_layers, problem.num_nodes
        self.bytes_SLT = np.zeros((S, L, NUM_TIERS))
        self.egress = np.zeros(S * L * N)
        self.ingress = np.zeros(S * L * N)
        self.nvlink = np.zeros(S * L * N)
        self.flows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.home_dist = home_tier_dist(problem)

    def add(self, src_gpu_H: np.ndarray, dst_gpu_HK: np.ndarray, bytes_H: np.ndarray, step_H: np.ndarray,
            layer_H: np.ndarray, reverse_H: np.ndarray) -> None:
        """Charge hyperedges (explicit GPUs, HOME = -1 source, PAD = -1 targets) by the kernel's rule."""
        p = self.p
        G, N, L = p.gpus_per_node, p.num_nodes, p.model.num_moe_layers
        S = len(self.steps)
        counts = tier_counts(p, src_gpu_H, dst_gpu_HK, self.home_dist)
        step_H = step_H.astype(np.int64)
        key = step_H * L + layer_H
        SL = S * L
        for t in range(NUM_TIERS):
            self.bytes_SLT[..., t] += np.bincount(key, weights=counts[:, t] * bytes_H, minlength=SL).reshape(S, L)

        def add(out: np.ndarray, idx: np.ndarray, w: np.ndarray) -> None:
            out += np.bincount(idx, weights=w, minlength=out.size)

        for c in dedup_columns(src_gpu_H, dst_gpu_HK, G):
            g, n = dst_gpu_HK[:, c.j], c.node
            remote, nv, hf = c.network, c.nvlink | c.relayed, c.home
            add(self.nvlink, key[nv] * N + n[nv], bytes_H[nv])
            # a crossing from an item's GPU to the first target GPU on a remote node (reversed: the other way)
            rev = reverse_H[remote]
            ga, gb = src_gpu_H[remote], g[remote]
            a, b = np.where(rev, gb, ga), np.where(rev, ga, gb)
            w = bytes_H[remote]
            add(self.egress, key[remote] * N + a // G, w)
            add(self.ingress, key[remote] * N + b // G, w)
            self.flows.append((step_H[remote], a, b, w))
            # the first target on node n of a home-sourced edge: from every GPU of the other nodes
            if hf.any():
                self._home(key[hf], step_H[hf], g[hf], n[hf], bytes_H[hf], reverse_H[hf])

    def _home(self, key: np.ndarray, step: np.ndarray, g: np.ndarray, n: np.ndarray, w: np.ndarray,
              rev: np.ndarray) -> None:
        p = self.p
        G, N = p.gpus_per_node, p.num_nodes
        SLN = self.egress.size
        inbound = np.bincount(key * N + n, weights=np.where(rev, 0.0, w), minlength=SLN).reshape(-1, N)
        outbound = np.bincount(key * N + n, weights=np.where(rev, w, 0.0), minlength=SLN).reshape(-1, N)
        self.ingress += (inbound * (N - 1) / N + (outbound.sum(axis=1, keepdims=True) - outbound) / N).ravel()
        self.egress += (outbound * (N - 1) / N + (inbound.sum(axis=1, keepdims=True) - inbound) / N).ravel()
        self.nvlink += ((inbound + outbound) * (G - 1) / (G * N)).ravel()
        homes = np.arange(N * G)
        for s in np.unique(step):
            for flag in (False, True):
                m = (step == s) & (rev == flag)
                if not m.any():
                    continue
                col = np.bincount(g[m], weights=w[m], minlength=N * G)
                tgt = np.flatnonzero(col)
                hh, tt = np.meshgrid(homes, tgt, indexing="ij")
                off = hh // G != tt // G
                src, dst = (tt[off], hh[off]) if flag else (hh[off], tt[off])
                self.flows.append((np.full(src.size, s), src, dst, col[tt[off]] / (N * G)))

    def result(self, accounting: str) -> Transfers:
        S, L, N = len(self.steps), self.p.model.num_moe_layers, self.p.num_nodes
        GA = self.p.num_gpus
        if self.flows:
            step, a, b, w = (np.concatenate(x) for x in zip(*self.flows))
        else:
            step = a = b = np.zeros(0, dtype=np.int64)
            w = np.zeros(0)
        key = (step.astype(np.int64) * GA + a) * GA + b
        uniq, inv = np.unique(key, return_inverse=True)
        summed = np.bincount(inv.ravel(), weights=w, minlength=uniq.size)
        shape = (S, L, N)
        return Transfers(self.steps, self.bytes_SLT, self.egress.reshape(shape), self.ingress.reshape(shape),
                         self.nvlink.reshape(shape), flow_step_F=uniq // (GA * GA),
                         flow_src_gpu_F=(uniq // GA) % GA, flow_dst_gpu_F=uniq % GA, flow_bytes_F=summed,
                         gpus_per_node=self.p.gpus_per_node, accounting=accounting)


def _item_gpu_or_pad(item_gpu_I: np.ndarray, items: np.ndarray) -> np.ndarray:
    return np.where(items >= 0, item_gpu_I[np.maximum(items, 0)], PAD)


def flow_transfers(problem: Problem, item_gpu_I: np.ndarray) -> Transfers:
    """The flow model's own transfers, exactly as the objective counts them, with a step per transfer kind."""
    tr = problem.traffic
    E = problem.model.num_experts
    src_gpu = _item_gpu_or_pad(item_gpu_I, tr.src_H)
    src_gpu = np.where(tr.src_H == HOME, HOME, src_gpu)
    dst_gpu = _item_gpu_or_pad(item_gpu_I, tr.dst_HK)
    layer = np.where(tr.src_H >= 0, tr.src_H, tr.dst_HK[:, 0]) // E
    rev_names = get_flow(problem.flow).reversed_kinds
    reverse = np.isin(tr.kind_H, [tr.kinds.index(k) for k in rev_names if k in tr.kinds])
    acc = _Acc(problem, tr.kinds)
    acc.add(src_gpu, dst_gpu, tr.bytes_H, tr.kind_H.astype(np.int64), layer, reverse)
    return acc.result(f"the {problem.flow} flow as the objective counts it")


def stage_gpus(problem: Problem, item_gpu_I: np.ndarray) -> list[np.ndarray]:
    """The sorted GPUs holding each MoE layer's experts (a chain stage)."""
    L, E = problem.model.num_moe_layers, problem.model.num_experts
    gpu_LE = np.asarray(item_gpu_I).reshape(L, E)
    return [np.unique(gpu_LE[ml]) for ml in range(L)]


def primary_share_LE(stats: RoutingStats) -> np.ndarray:
    """float [L, E]: the probability that expert e is a token's primary (highest-gate) expert at layer l."""
    L, E = stats.num_moe_layers, stats.num_experts
    if stats.paths_TLK is not None and stats.paths_TLK.shape[0]:
        prim = stats.paths_TLK[:, :, 0].astype(np.int64)
        counts = np.stack([np.bincount(prim[:, ml], minlength=E) for ml in range(L)])
        return counts / prim.shape[0]
    return stats.load_LE / max(stats.load_LE.sum(axis=1).max(), 1)


def _stage_hop(acc: _Acc, src_stage: np.ndarray, dst_stage: np.ndarray, bytes_: float, step: int,
               layer: int) -> None:
    """One token vector from a home uniform over one stage's GPUs to a home uniform over another's."""
    src = np.repeat(src_stage, dst_stage.size)
    dst = np.tile(dst_stage, src_stage.size)[:, None]
    w = np.full(src.size, bytes_ / src.size)
    acc.add(src, dst, w, np.full(src.size, step), np.full(src.size, layer), np.zeros(src.size, dtype=bool))


def chain_with_attention(problem: Problem, item_gpu_I: np.ndarray, stats: RoutingStats, *,
                         dense_stage_D: np.ndarray | None = None, ep_traffic: Traffic | None = None) -> Transfers:
    """The chain flow's combine plus the attention detour (module docstring), per token.

    dense_stage_D: the stage whose GPUs run each dense layer (default all on stage 0); the token then
    goes output head (stage of dense layer 1) -> each dense layer's stage in turn -> stage 0.
    ep_traffic: the ep flow's traffic of the same statistics, if already built (its dispatch hyperedges).
    """
    model = problem.model
    L, E = model.num_moe_layers, model.num_experts
    B = float(model.token_bytes)
    steps = ("dispatch", "combine", "return", "output", "dense")
    acc = _Acc(problem, steps)
    stages = stage_gpus(problem, item_gpu_I)
    dense = np.zeros(len(model.dense_layers), dtype=np.int64) if dense_stage_D is None else np.asarray(dense_stage_D)
    # dispatch: the ep flow's dispatch hyperedges (HOME -> the token's k experts), home uniform on the stage
    ep = ep_traffic if ep_traffic is not None else build_traffic("ep", stats, model, dedup=problem.dedup)
    disp = ep.kind_H == ep.kinds.index("dispatch")
    dst_items = ep.dst_HK[disp]
    dst_gpu = _item_gpu_or_pad(item_gpu_I, dst_items)
    layer = dst_items[:, 0] // E
    w = ep.bytes_H[disp]
    for ml in range(L):
        m = layer == ml
        S = stages[ml]
        src = np.repeat(S, m.sum())
        acc.add(src, np.tile(dst_gpu[m], (S.size, 1)), np.tile(w[m], S.size) / S.size,
                np.zeros(src.size, dtype=np.int64), np.full(src.size, ml), np.zeros(src.size, dtype=bool))
    # combine: exactly the chain flow's combine hyperedges
    tr = problem.traffic
    comb = tr.kind_H == tr.kinds.index("combine")
    acc.add(item_gpu_I[tr.src_H[comb]], _item_gpu_or_pad(item_gpu_I, tr.dst_HK[comb]), tr.bytes_H[comb],
            np.ones(int(comb.sum()), dtype=np.int64), tr.src_H[comb] // E, np.zeros(int(comb.sum()), dtype=bool))
    # return: primary of layer l -> home of stage l + 1; output: the last primary -> the first dense layer's stage
    share = primary_share_LE(stats)
    gpu_LE = np.asarray(item_gpu_I).reshape(L, E)
    for ml in range(L):
        S = stages[ml + 1] if ml + 1 < L else stages[int(dense[0]) if dense.size else 0]
        src = np.repeat(gpu_LE[ml], S.size)
        dst = np.tile(S, E)[:, None]
        step = 2 if ml + 1 < L else 3
        acc.add(src, dst, np.repeat(share[ml] * B, S.size) / S.size, np.full(src.size, step),
                np.full(src.size, ml), np.zeros(src.size, dtype=bool))
    # dense: from each dense layer's stage to the next one's, and on to stage 0
    path = [int(x) for x in dense] + [0]
    for a, b in itertools.pairwise(path):
        if a != b:
            _stage_hop(acc, stages[a], stages[b], B, 4, b)
    return acc.result("chain flow with attention on each layer's stage (dispatch, combine, return, output, dense)")


def tp_allreduce_transfers(problem: Problem) -> Transfers:
    """ep with tensor-parallel attention inside one node: per MoE layer two ring all-reduces of every token
    (after attention, after the experts); a GPU sends 2 (G - 1) / G token vectors per token and all-reduce."""
    assert problem.num_nodes == 1
    L, G = problem.model.num_moe_layers, problem.num_gpus
    B = float(problem.model.token_bytes)
    steps = ("attention all-reduce", "expert all-reduce")
    per_token = 2.0 * (G - 1) * B
    bytes_SLT = np.zeros((2, L, NUM_TIERS))
    bytes_SLT[:, :, TIER_NVLINK] = per_token
    zeros = np.zeros((2, L, 1))
    empty = np.zeros(0, dtype=np.int64)
    return Transfers(steps, bytes_SLT, zeros, zeros.copy(), np.full((2, L, 1), per_token), flow_step_F=empty,
                     flow_src_gpu_F=empty, flow_dst_gpu_F=empty, flow_bytes_F=np.zeros(0), gpus_per_node=G,
                     accounting="tensor-parallel attention: two ring all-reduces per MoE layer over NVLink")
