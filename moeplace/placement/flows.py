"""Flow models: the transfers one token makes through the MoE layers, turned into item-to-item traffic.

Each flow model is a documented transfer list (see docs/flow-models.md) and a function from routing
statistics to `Traffic`. Items are numbered `moe_layer * num_experts + expert`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from moeplace.errors import InputError
from moeplace.placement.schema import ModelSpec
from moeplace.traces.stats import RoutingStats
from moeplace.placement.traffic import HOME, PAD, Traffic, aggregate


@dataclass(frozen=True)
class Transfer:
    """One line of a flow model's transfer list, per token and MoE layer."""

    name: str
    source: str
    target: str
    count: str
    dedup: bool
    note: str = ""


@dataclass(frozen=True)
class FlowModel:
    name: str
    summary: str
    transfers: tuple[Transfer, ...]
    build: Callable[[RoutingStats, ModelSpec, bool], Traffic]


FLOWS: dict[str, FlowModel] = {}


def register_flow(flow: FlowModel) -> FlowModel:
    if flow.name in FLOWS:
        raise ValueError(f"flow model {flow.name!r} is already registered")
    FLOWS[flow.name] = flow
    return flow


def get_flow(name: str) -> FlowModel:
    if name not in FLOWS:
        raise InputError(f"unknown flow model {name!r} (known: {', '.join(FLOWS)})", field="--flow")
    return FLOWS[name]


def build_traffic(flow: str, stats: RoutingStats, model: ModelSpec, *, dedup: bool = True) -> Traffic:
    return get_flow(flow).build(stats, model, dedup)


def _item_paths(paths_TLK: np.ndarray, num_experts: int) -> np.ndarray:
    L = paths_TLK.shape[1]
    return paths_TLK.astype(np.int64) + (np.arange(L, dtype=np.int64) * num_experts)[None, :, None]


def _split(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Without dedup, one hyperedge of K targets becomes K single-target sends."""
    K = dst.shape[1]
    return np.repeat(src, K), dst.reshape(-1, 1)


def _chain(stats: RoutingStats, model: ModelSpec, dedup: bool) -> Traffic:
    E, k, L = stats.num_experts, stats.top_k, stats.num_moe_layers
    B = float(model.token_bytes)
    n_items = L * E
    kinds = ("combine", "forward")
    if stats.paths_TLK is not None and stats.paths_TLK.shape[0] > 0:
        item = _item_paths(stats.paths_TLK, E)
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
                src, dst = _split(src, dst)
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


def _ep(stats: RoutingStats, model: ModelSpec, dedup: bool) -> Traffic:
    E, k, L = stats.num_experts, stats.top_k, stats.num_moe_layers
    B = float(model.token_bytes)
    n_items = L * E
    kinds = ("dispatch", "combine")
    if stats.paths_TLK is not None and stats.paths_TLK.shape[0] > 0:
        item = _item_paths(stats.paths_TLK, E)
        T = item.shape[0]
        dst = item.reshape(-1, k)
        src = np.full(dst.shape[0], HOME, dtype=np.int64)
        if not dedup:
            src, dst = _split(src, dst)
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
    build=_chain,
))

register_flow(FlowModel(
    name="ep",
    summary="classic expert parallelism: the token's home GPU dispatches to its k experts and collects the outputs",
    transfers=(
        Transfer("dispatch", "home GPU (attention, KV cache)", "the k experts of layer l", "k", True,
                 "home is uniform over all GPUs (data-parallel attention)"),
        Transfer("combine", "each of the k experts of layer l", "home GPU", "k", False,
                 "expert outputs; the next layer's attention runs at home"),
    ),
    build=_ep,
))
