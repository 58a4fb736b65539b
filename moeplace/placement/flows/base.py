"""The flow model as an object: what one token's trip through the MoE layers moves, and how it runs.

A `FlowModel` owns everything that differs between flows: its documented transfer list (docs/flow-models.md),
the function from routing statistics to item-to-item `Traffic` (what the objective counts), how the cost
model runs it (`pipelined`, `collective`, `tensor_parallel_attention`), how it is planned by default
(`balance_per_layer`), and what a peer counts as each expert's load (`peer_load`). Code outside this
package reads these fields and never compares a flow's name. Items are numbered
`moe_layer * num_experts + expert`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from moeplace.errors import InputError
from moeplace.placement.schema import ModelSpec
from moeplace.placement.traffic import PAD, Traffic
from moeplace.traces.stats import RoutingStats

if TYPE_CHECKING:
    from moeplace.placement.problem import Problem


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
    """name: `--flow`; build(stats, model, dedup) -> Traffic.

    pipelined: a token visits one stage of GPUs per MoE layer in turn, so the cost model runs the model as
        a pipeline (dense layers and attention ride the stages, micro-batches fill it, each GPU holds one
        layer's experts); False: every GPU runs every layer (data-parallel attention at the token's home).
    collective: the communication the transfers are measured as, "p2p" or "alltoall" (the profile's curve).
    tensor_parallel_attention: the cost model can run attention tensor-parallel inside one node instead.
    balance_per_layer: planned with every GPU's count of each layer's experts balanced by default.
    reversed_kinds: transfer kinds stored as HOME -> item whose data really moves item -> home (the cost
        model charges them to the nodes in that direction).
    peer_load(problem) -> float [items]: the tokens through each expert, in bytes per token, as a load
        balancer (EPLB) sees them; None: the bytes of every hyperedge an item takes part in (a proxy).
    engine_layout: the serving engines' expert-parallel layout, so several experts per GPU may include
        redundant copies (`--redundant-experts`, moeplace/ep/).
    hidden_at: where the runtime keeps a token's hidden state between MoE layers: "first_expert" (the GPU
        of the expert it chose first, which forwards it to the next layer's experts: every rank holds the
        ingress) or "home" (its home GPU, rank = token id mod world: dispatch and combine every layer).
    """

    name: str
    summary: str
    transfers: tuple[Transfer, ...]
    build: Callable[[RoutingStats, ModelSpec, bool], Traffic]
    pipelined: bool
    collective: Literal["p2p", "alltoall"]
    tensor_parallel_attention: bool = False
    balance_per_layer: bool = False
    reversed_kinds: tuple[str, ...] = ()
    peer_load: Callable[[Problem], np.ndarray] | None = None
    engine_layout: bool = False
    hidden_at: Literal["first_expert", "home"] = "home"


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


def item_paths(paths_TLK: np.ndarray, num_experts: int) -> np.ndarray:
    L = paths_TLK.shape[1]
    return paths_TLK.astype(np.int64) + (np.arange(L, dtype=np.int64) * num_experts)[None, :, None]


def split_targets(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Without dedup, one hyperedge of K targets becomes K single-target sends."""
    K = dst.shape[1]
    return np.repeat(src, K), dst.reshape(-1, 1)


def item_bytes(problem: Problem, kind: str, role: str) -> np.ndarray:
    """float [items]: bytes per token each item sends (role "source") or receives ("target") in the
    hyperedges of one transfer kind; zeros when the flow has no such kind."""
    tr = problem.traffic
    out = np.zeros(tr.num_items)
    if kind not in tr.kinds:
        return out
    mask = tr.kind_H == tr.kinds.index(kind)
    if role == "source":
        src = tr.src_H[mask]
        ok = src >= 0
        np.add.at(out, src[ok], tr.bytes_H[mask][ok])
    else:
        dst = tr.dst_HK[mask]
        w = np.broadcast_to(tr.bytes_H[mask][:, None], dst.shape)
        ok = dst != PAD
        np.add.at(out, dst[ok], w[ok])
    return out
