"""EP placement peers, written here from their published descriptions, behind one signature.

A peer is `(weight_LE, coact_LEE, paths_TLK, shape, seed) -> phy2log_LP` on the engines' layout (every GPU the
same number of slots of every layer); `shape` is an `EpShape`. Peers see the planning sample only.

  eplb-hierarchical  DeepSeek EPLB's hierarchical policy (groups to nodes, replicas inside nodes, GPUs);
  eplb-global        EPLB's global policy (replicate over the layer, pack to all GPUs);
  trtllm-cooccurrence  TensorRT-LLM-style offline placement: EPLB's replica counts, then every slot (heaviest
                     first) to the rank with the most co-occurrence with what it holds, among ranks with room
                     whose load stays within 5% of the mean (relaxed when none);
  sglang-topology    SGLang-style topology-aware replicas: EPLB's replica counts, copies of an expert spread over
                     distinct nodes (lightest node first), then packed to the node's GPUs;
  mtkahypar          Mt-KaHyPar km1 partition of the slots into nodes (a token's hyperedge joins one copy of each
                     of its experts, copies taking turns), perfect balance of slots, then packed to GPUs;
  moeplace           `moeplace.rebalance` with the co-activation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from moeplace.ep.eplb import hierarchical, replicate_experts
from moeplace.ep.partition import km1_nodes, pack_nodes
from moeplace.ep.rebalance import rebalance


@dataclass(frozen=True)
class EpShape:
    num_experts: int
    num_physical: int
    num_groups: int
    num_nodes: int
    num_gpus: int

    @property
    def slots_per_gpu(self) -> int:
        return self.num_physical // self.num_gpus

    @property
    def gpus_per_node(self) -> int:
        return self.num_gpus // self.num_nodes


EpPeer = Callable[[np.ndarray, np.ndarray, np.ndarray, EpShape, int], np.ndarray]
EP_PEERS: dict[str, EpPeer] = {}


def register(name: str):
    def deco(fn: EpPeer) -> EpPeer:
        if name in EP_PEERS:
            raise ValueError(f"EP peer {name!r} is already registered")
        EP_PEERS[name] = fn
        return fn

    return deco


@register("eplb-hierarchical")
def eplb_hier(w, co, paths, s: EpShape, seed: int = 0) -> np.ndarray:
    groups = s.num_groups if s.num_groups % s.num_nodes == 0 else 1
    nodes = s.num_nodes if groups > 1 else 1
    return hierarchical(w, s.num_physical, groups, nodes, s.num_gpus)[0]


@register("eplb-global")
def eplb_global(w, co, paths, s: EpShape, seed: int = 0) -> np.ndarray:
    return hierarchical(w, s.num_physical, 1, 1, s.num_gpus)[0]


def _slots(w: np.ndarray, s: EpShape) -> tuple[np.ndarray, np.ndarray]:
    """EPLB's replica counts: (slot expert [L, P], slot weight [L, P]) in slot creation order."""
    phy, _, cnt = replicate_experts(w, s.num_physical)
    return phy, np.take_along_axis(w / cnt, phy, axis=1)


@register("trtllm-cooccurrence")
def trtllm_cooccurrence(w, co, paths, s: EpShape, seed: int = 0) -> np.ndarray:
    L = w.shape[0]
    phy, sw = _slots(w, s)
    out = np.empty_like(phy)
    for li in range(L):
        C = co[li] + co[li].T
        held = np.zeros((s.num_gpus, s.num_experts))
        load = np.zeros(s.num_gpus)
        room = np.full(s.num_gpus, s.slots_per_gpu)
        cap = sw[li].sum() / s.num_gpus * 1.05
        fill = [[] for _ in range(s.num_gpus)]
        for p in np.argsort(-sw[li], kind="stable").tolist():
            e = int(phy[li, p])
            ok = (room > 0) & (held[:, e] == 0)
            if not ok.any():
                ok = room > 0
            fit = ok & (load + sw[li, p] <= cap)
            cand = fit if fit.any() else ok
            aff = np.where(cand, held @ C[e], -np.inf)
            best = np.flatnonzero(aff == aff.max())
            g = int(best[np.argmin(load[best])])
            fill[g].append(e)
            held[g, e] += 1
            load[g] += sw[li, p]
            room[g] -= 1
        out[li] = np.concatenate(fill)
    return out


@register("sglang-topology")
def sglang_topology(w, co, paths, s: EpShape, seed: int = 0) -> np.ndarray:
    phy, sw = _slots(w, s)
    per_node = s.num_physical // s.num_nodes
    out = np.empty_like(phy)
    for li in range(w.shape[0]):
        node = np.empty(s.num_physical, dtype=np.int64)
        load = np.zeros(s.num_nodes)
        room = np.full(s.num_nodes, per_node)
        held = np.zeros((s.num_nodes, s.num_experts), dtype=bool)
        for p in np.argsort(-sw[li], kind="stable").tolist():
            e = int(phy[li, p])
            ok = (room > 0) & ~held[:, e]
            if not ok.any():
                ok = room > 0
            n = int(np.argmin(np.where(ok, load, np.inf)))
            node[p], held[n, e] = n, True
            load[n] += sw[li, p]
            room[n] -= 1
        out[li] = pack_nodes(phy[li], sw[li], node, s.num_gpus, s.num_nodes)
    return out


@register("mtkahypar")
def mtkahypar_peer(w, co, paths, s: EpShape, seed: int = 0) -> np.ndarray:
    phy, sw = _slots(w, s)
    nodes = [km1_nodes(phy[li], paths[:, li, :].astype(np.int64), s.num_nodes, seed) for li in range(w.shape[0])]
    return np.stack([pack_nodes(phy[li], sw[li], n, s.num_gpus, s.num_nodes) for li, n in enumerate(nodes)])


@register("moeplace")
def moeplace_peer(w, co, paths, s: EpShape, seed: int = 0) -> np.ndarray:
    return rebalance(w, s.num_physical, s.num_groups, s.num_nodes, s.num_gpus, coact=paths, seed=seed)[0]
