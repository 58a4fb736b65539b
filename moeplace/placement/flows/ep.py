"""The ep flow: classic expert parallelism; the token's home GPU dispatches to its k experts and collects
their outputs (docs/flow-models.md)."""

from __future__ import annotations

import numpy as np

from moeplace.placement.flows.base import FlowModel, Transfer, item_bytes, item_paths, register_flow, split_targets
from moeplace.placement.problem import Problem
from moeplace.placement.schema import ModelSpec
from moeplace.placement.traffic import HOME, PAD, Traffic, aggregate
from moeplace.traces.stats import RoutingStats


def build(stats: RoutingStats, model: ModelSpec, dedup: bool) -> Traffic:
    E, k, L = stats.num_experts, stats.top_k, stats.num_moe_layers
    B = float(model.token_bytes)
    n_items = L * E
    kinds = ("dispatch", "combine")
    if stats.paths_TLK is not None and stats.paths_TLK.shape[0] > 0:
        item = item_paths(stats.paths_TLK, E)
        T = item.shape[0]
        dst = item.reshape(-1, k)
        src = np.full(dst.shape[0], HOME, dtype=np.int64)
        if not dedup:
            src, dst = split_targets(src, dst)
            dst = np.concatenate([dst, np.full((dst.shape[0], k - 1), PAD, dtype=np.int64)], axis=1)
        comb = item.reshape(-1)
        comb_dst = np.full((comb.size, k), PAD, dtype=np.int64)
        comb_dst[:, 0] = comb
        all_src = np.concatenate([src, np.full(comb.size, HOME, dtype=np.int64)])
        all_dst = np.concatenate([dst, comb_dst])
        kind = np.concatenate([np.zeros(src.size, dtype=np.int8), np.ones(comb.size, dtype=np.int8)])
        return aggregate(all_src, all_dst, np.full(all_src.size, B / T), kind, kinds, n_items)
    N = max(stats.num_tokens, 1)
    lay, e = np.nonzero(stats.load_LE)
    items = lay * E + e
    w = stats.load_LE[lay, e] / N * B
    src = np.full(2 * items.size, HOME, dtype=np.int64)
    dst = np.concatenate([items, items])[:, None]
    kind = np.concatenate([np.zeros(items.size, dtype=np.int8), np.ones(items.size, dtype=np.int8)])
    return aggregate(src, dst, np.concatenate([w, w]), kind, kinds, n_items)


def peer_load(problem: Problem) -> np.ndarray:
    """The dispatch targets: the tokens each expert serves."""
    return item_bytes(problem, "dispatch", "target")


register_flow(FlowModel(
    name="ep",
    summary="classic expert parallelism: the token's home GPU dispatches to its k experts and collects the outputs",
    transfers=(
        Transfer("dispatch", "home GPU (attention, KV cache)", "the k experts of layer l", "k", True,
                 "home is uniform over all GPUs (data-parallel attention)"),
        Transfer("combine", "each of the k experts of layer l", "home GPU", "k", False,
                 "expert outputs; the next layer's attention runs at home"),
    ),
    build=build,
    pipelined=False,
    collective="alltoall",
    tensor_parallel_attention=True,
    balance_per_layer=True,
    reversed_kinds=("combine",),
    peer_load=peer_load,
    engine_layout=True,
))
