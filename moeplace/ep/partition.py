"""Slots to nodes by hypergraph partitioning (Mt-KaHyPar km1), and the repair that brings GPUs under a cap.

`km1_nodes`: one layer's physical slots into nodes, perfectly balanced in slot count; a token's hyperedge
joins one copy of each of its experts (copies take turns over the tokens, as a uniform copy choice splits
them). `pack_nodes`: every node's slots onto its GPUs heaviest first (EPLB's packing). `repair`: swaps that
lower the busiest GPU (preferring swaps inside a node, which cost no traffic) until every GPU is under the cap.
"""

from __future__ import annotations

import numpy as np

from moeplace.ep.eplb import balanced_packing


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("mtkahypar") is not None


def km1_nodes(phy_P: np.ndarray, ids_TK: np.ndarray, num_nodes: int, seed: int = 0) -> np.ndarray:
    """int [P]: the node of every slot."""
    from moeplace.peers.mtkahypar import km1_partition

    P = phy_P.size
    T, k = ids_TK.shape
    copies = [np.flatnonzero(phy_P == e) for e in range(int(phy_P.max()) + 1)]
    pins = np.array([copies[e][t % copies[e].size] for t, row in enumerate(ids_TK.tolist()) for e in row])
    ptr = np.arange(0, T * k + 1, k)
    return km1_partition(P, ptr, pins, np.ones(T), [P // num_nodes] * num_nodes, seed)


def pack_nodes(phy_P: np.ndarray, sw_P: np.ndarray, node_P: np.ndarray, num_gpus: int, num_nodes: int) -> np.ndarray:
    """phy2log of one layer: every node's slots packed to its GPUs heaviest first."""
    P = phy_P.size
    per_node, gpn = P // num_nodes, num_gpus // num_nodes
    out = np.empty(P, dtype=np.int64)
    for n in range(num_nodes):
        mine = np.flatnonzero(node_P == n)
        assert mine.size == per_node, (mine.size, per_node)
        pack, rank = balanced_packing(sw_P[mine][None, :], gpn)
        out[n * per_node + pack[0] * (P // num_gpus) + rank[0]] = phy_P[mine]
    return out


def repair(phy_P: np.ndarray, weight_E: np.ndarray, coact_EE: np.ndarray, cost_NN: np.ndarray, num_gpus: int,
           num_nodes: int, cap: float, max_swaps: int = 4000) -> np.ndarray | None:
    """phy2log with every GPU's load <= cap, or None when the swaps run out first. Each swap moves load off
    the busiest GPU without lifting the other GPU to its level; among those, the one that adds the least
    co-activation across nodes (`rebalance`'s Q; swaps inside a node add none)."""
    P, E = phy_P.size, weight_E.size
    per_gpu, gpn = P // num_gpus, num_gpus // num_nodes
    phy = phy_P.copy()
    gpu = np.arange(P) // per_gpu
    node = gpu // gpn
    cnt = np.bincount(phy, minlength=E).astype(np.float64)
    sw = weight_E / cnt
    C = (coact_EE + coact_EE.T) / 2.0
    np.fill_diagonal(C, 0.0)
    slack = cap * (1 + 1e-12) + 1e-12
    for _ in range(max_swaps):
        load = np.bincount(gpu, weights=sw[phy], minlength=num_gpus)
        g = int(np.argmax(load))
        if load[g] <= slack:
            return phy
        X = np.zeros((E, num_nodes))
        np.add.at(X, (phy, node), 1.0)
        A = C @ (X / cnt[:, None]) @ cost_NN
        mine, other = np.flatnonzero(gpu == g), np.flatnonzero(gpu != g)
        d = sw[phy[mine]][:, None] - sw[phy[other]][None, :]
        new_other = load[gpu[other]][None, :] + d
        ok = (d > 1e-12) & (new_other < load[g] - 1e-12)
        if not ok.any():
            return None
        ei, ej, ni, nj = phy[mine], phy[other], node[mine], node[other]
        ci, cj = cnt[ei][:, None], cnt[ej][None, :]
        dq = ((A[ei][:, nj] - A[ei, ni][:, None]) / ci + (A[ej][:, ni].T - A[ej, nj][None, :]) / cj
              + 2.0 * C[ei][:, ej] * cost_NN[ni][:, nj] / (ci * cj))
        dq = np.where(ni[:, None] == nj[None, :], 0.0, dq)
        rank = np.where(ok, dq + 1e-9 * np.maximum(load[g] - d, new_other) / cap, np.inf)
        i, j = divmod(int(np.argmin(rank)), other.size)
        a, b = mine[i], other[j]
        phy[a], phy[b] = phy[b], phy[a]
    return None
