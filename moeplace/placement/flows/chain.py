"""The chain flow: one expert per GPU; a token's secondaries send to its primary, which forwards the layer
output to the next layer's experts (docs/flow-models.md)."""

from __future__ import annotations

import numpy as np

from moeplace.placement.flows.base import FlowModel, Transfer, item_bytes, item_paths, register_flow, split_targets
from moeplace.placement.problem import Problem
from moeplace.placement.schema import ModelSpec
from moeplace.placement.traffic import PAD, Traffic, aggregate
from moeplace.traces.stats import RoutingStats


def build(stats: RoutingStats, model: ModelSpec, dedup: bool) -> Traffic:
    E, k, L = stats.num_experts, stats.top_k, stats.num_moe_layers
    B = float(model.token_bytes)
    n_items = L * E
    kinds = ("combine", "forward")
    if stats.paths_TLK is not None and stats.paths_TLK.shape[0] > 0:
        item = item_paths(stats.paths_TLK, E)
        T = item.shape[0]
        per = B / T
        srcs, dsts, kinds_, w = [], [], [], []
        if k > 1:
            sec = item[:, :, 1:].reshape(-1)
            pri = np.repeat(item[:, :, 0].reshape(-1), k - 1)
            srcs.append(sec)
            dsts.append(np.full((sec.size, k), PAD, dtype=np.int64))
            dsts[-1][:, 0] = pri
            kinds_.append(np.zeros(sec.size, dtype=np.int8))
        if L > 1:
            src = item[:, :-1, 0].reshape(-1)
            dst = item[:, 1:, :].reshape(-1, k)
            if not dedup:
                src, dst = split_targets(src, dst)
                dst = np.concatenate([dst, np.full((dst.shape[0], k - 1), PAD, dtype=np.int64)], axis=1)
            srcs.append(src)
            dsts.append(dst)
            kinds_.append(np.ones(src.size, dtype=np.int8))
        src = np.concatenate(srcs)
        dst = np.concatenate(dsts)
        kind = np.concatenate(kinds_)
        return aggregate(src, dst, np.full(src.size, per), kind, kinds, n_items)
    # Pairwise fallback: no path sample, so no dedup is possible.
    N = max(stats.num_tokens, 1)
    srcs, dsts, kinds_, w = [], [], [], []
    base = (np.arange(L) * E)[:, None, None]
    if k > 1:
        lay, e, f = np.nonzero(stats.coact_LEE)
        srcs.append(lay * E + e)
        dsts.append((lay * E + f)[:, None])
        w.append(stats.coact_LEE[lay, e, f] / N * B / k)
        kinds_.append(np.zeros(lay.size, dtype=np.int8))
    if L > 1:
        lay, e, f = np.nonzero(stats.trans_primary_LEE)
        srcs.append(lay * E + e)
        dsts.append(((lay + 1) * E + f)[:, None])
        w.append(stats.trans_primary_LEE[lay, e, f] / N * B)
        kinds_.append(np.ones(lay.size, dtype=np.int8))
    del base
    return aggregate(np.concatenate(srcs), np.concatenate(dsts), np.concatenate(w), np.concatenate(kinds_), kinds,
                     n_items)


def peer_load(problem: Problem) -> np.ndarray:
    """The forward targets at layers >= 1; at layer 0 the tokens an expert serves as primary (forward
    sources) or secondary (combine sources)."""
    first = problem.item_layer_I == 0
    if problem.model.num_moe_layers > 1:
        load = item_bytes(problem, "forward", "target")
        load[first] = (item_bytes(problem, "forward", "source") + item_bytes(problem, "combine", "source"))[first]
        return load
    k = max(problem.model.top_k - 1, 1)
    return item_bytes(problem, "combine", "source") + item_bytes(problem, "combine", "target") / k


register_flow(FlowModel(
    name="chain",
    summary="expert-per-GPU chain: secondaries send to the primary, the primary forwards to the next layer's experts",
    transfers=(
        Transfer("combine", "secondary expert j of layer l (j = 2..k)", "primary expert of layer l", "k - 1", False,
                 "weighted expert output, added to the primary's output and the residual"),
        Transfer("forward", "primary expert of layer l", "the k experts of layer l+1", "k (l < last)", True,
                 "the layer output; with dedup one network crossing per distinct remote node, then NVLink"),
        Transfer("egress", "primary expert of the last MoE layer", "the output head", "1 (last layer)", False,
                 "placement-independent: not part of the objective"),
    ),
    build=build,
    pipelined=True,
    hidden_at="first_expert",
    collective="p2p",
    peer_load=peer_load,
))
