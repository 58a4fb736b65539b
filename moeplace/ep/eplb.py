"""DeepSeek EPLB's algorithm, written here in numpy from its published policy (deepseek-ai/EPLB, eplb.py).

It is the floor every moeplace EP placement is measured against (`moeplace.ep.rebalance` never does worse on
balance), and two of the EP peers (`eplb-hierarchical`, `eplb-global`).

Hierarchical policy, per MoE layer (used when the expert groups divide evenly over the nodes):
  Step 1  pack the expert groups to nodes, every node the same number of groups, node loads balanced
          (heaviest group first, each to the lightest node that still has room);
  Step 2  inside every node, give its spare physical slots to its hottest experts one at a time
          (argmax of load / copies);
  Step 3  pack every node's physical experts to its GPUs the same heaviest-first way.
Global policy: the same with one group and one node (replicate over the whole layer, then pack to all GPUs).

Load model (EPLB's): an expert's tokens split evenly over its copies, so a slot holding expert e carries
weight[e] / logcnt[e]. Shapes: weight [L, E]; phy2log, phyrank [L, P] (P = E + redundant slots);
logcnt [L, E]; log2phy [L, E, max copies], padded with -1.
"""

from __future__ import annotations

import numpy as np


def balanced_packing(weight_LN: np.ndarray, num_packs: int) -> tuple[np.ndarray, np.ndarray]:
    """(pack, rank in pack), int [L, n] each: n objects per layer into num_packs packs of n / num_packs."""
    L, n = weight_LN.shape
    assert n % num_packs == 0, (n, num_packs)
    per_pack = n // num_packs
    if per_pack == 1:
        return np.broadcast_to(np.arange(n), (L, n)).copy(), np.zeros((L, n), dtype=np.int64)
    pack = np.full((L, n), -1, dtype=np.int64)
    rank = np.full((L, n), -1, dtype=np.int64)
    for li in range(L):
        load = np.zeros(num_packs)
        items = np.zeros(num_packs, dtype=np.int64)
        for obj in np.argsort(-weight_LN[li], kind="stable").tolist():
            p = int(np.argmin(np.where(items < per_pack, load, np.inf)))
            pack[li, obj], rank[li, obj] = p, items[p]
            load[p] += weight_LN[li, obj]
            items[p] += 1
    return pack, rank


def replicate_experts(weight_LX: np.ndarray, num_phy: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(phy2log [L, num_phy], phyrank [L, num_phy], logcnt [L, X]): spare slots to argmax load / copies."""
    L, X = weight_LX.shape
    phy2log = np.broadcast_to(np.arange(num_phy) % X, (L, num_phy)).copy()
    phyrank = np.zeros((L, num_phy), dtype=np.int64)
    logcnt = np.ones((L, X), dtype=np.int64)
    rows = np.arange(L)
    for i in range(X, num_phy):
        hot = np.argmax(weight_LX / logcnt, axis=1)
        phy2log[:, i] = hot
        phyrank[:, i] = logcnt[rows, hot]
        logcnt[rows, hot] += 1
    return phy2log, phyrank, logcnt


def _inverse(perm_LP: np.ndarray) -> np.ndarray:
    inv = np.empty_like(perm_LP)
    np.put_along_axis(inv, perm_LP, np.broadcast_to(np.arange(perm_LP.shape[1]), perm_LP.shape), axis=1)
    return inv


def hierarchical(weight_LE: np.ndarray, num_physical: int, num_groups: int, num_nodes: int,
                 num_gpus: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EPLB's hierarchical policy: (phy2log, phyrank, logcnt)."""
    L, E = weight_LE.shape
    assert E % num_groups == 0 and num_groups % num_nodes == 0 and num_gpus % num_nodes == 0
    assert num_physical % num_gpus == 0
    group_size, groups_per_node = E // num_groups, num_groups // num_nodes
    per_gpu = num_physical // num_gpus
    # Step 1: groups to nodes
    group_w = weight_LE.reshape(L, num_groups, group_size).sum(-1)
    gpack, grank = balanced_packing(group_w, num_nodes)
    log2mlog = (((gpack * groups_per_node + grank) * group_size)[:, :, None] + np.arange(group_size)).reshape(L, E)
    mlog2log = _inverse(log2mlog)
    # Step 2: replicas inside every node
    w_mlog = np.take_along_axis(weight_LE, mlog2log, axis=1).reshape(L * num_nodes, E // num_nodes)
    phy2mlog, phyrank, mlogcnt = replicate_experts(w_mlog, num_physical // num_nodes)
    # Step 3: physical experts to the node's GPUs
    w_phy = np.take_along_axis(w_mlog / mlogcnt, phy2mlog, axis=1)
    pack, rank = balanced_packing(w_phy, num_gpus // num_nodes)
    pphy2phy = _inverse(pack * per_gpu + rank)
    pphy2mlog = np.take_along_axis(phy2mlog, pphy2phy, axis=1)
    offset = np.arange(0, E, E // num_nodes).reshape(1, -1, 1)
    pphy2mlog = (pphy2mlog.reshape(L, num_nodes, -1) + offset).reshape(L, -1)
    phy2log = np.take_along_axis(mlog2log, pphy2mlog, axis=1)
    pphyrank = np.take_along_axis(phyrank, pphy2phy, axis=1).reshape(L, -1)
    logcnt = np.take_along_axis(mlogcnt.reshape(L, -1), log2mlog, axis=1)
    return phy2log, pphyrank, logcnt


def log2phy_of(phy2log_LP: np.ndarray, phyrank_LP: np.ndarray, logcnt_LE: np.ndarray) -> np.ndarray:
    """int [L, E, max copies]: the physical slots of every expert by replica rank, -1 padded."""
    L, P = phy2log_LP.shape
    m = int(logcnt_LE.max())
    out = np.full((L, logcnt_LE.shape[1] * m), -1, dtype=np.int64)
    np.put_along_axis(out, phy2log_LP * m + phyrank_LP, np.broadcast_to(np.arange(P), (L, P)), axis=1)
    return out.reshape(L, -1, m)


def eplb_rebalance(weight_LE: np.ndarray, num_replicas: int, num_groups: int, num_nodes: int,
                   num_gpus: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EPLB's `rebalance_experts`: hierarchical when groups divide over nodes, else global.
    Returns (phy2log [L, P], log2phy [L, E, max copies], logcnt [L, E])."""
    w = np.asarray(weight_LE, dtype=np.float64)
    if num_groups % num_nodes == 0:
        phy2log, phyrank, logcnt = hierarchical(w, num_replicas, num_groups, num_nodes, num_gpus)
    else:
        phy2log, phyrank, logcnt = hierarchical(w, num_replicas, 1, 1, num_gpus)
    return phy2log, log2phy_of(phy2log, phyrank, logcnt), logcnt


def phyrank_of(phy2log_LP: np.ndarray) -> np.ndarray:
    """int [L, P]: replica rank of every slot (0 for an expert's first slot in slot order, then 1, ...)."""
    L, P = phy2log_LP.shape
    out = np.zeros((L, P), dtype=np.int64)
    for li in range(L):
        order = np.argsort(phy2log_LP[li], kind="stable")
        sorted_e = phy2log_LP[li, order]
        starts = np.searchsorted(sorted_e, sorted_e)
        out[li, order] = np.arange(P) - starts
    return out


def gpu_load_LG(weight_LE: np.ndarray, phy2log_LP: np.ndarray, num_gpus: int) -> np.ndarray:
    """float [L, GPUs]: EPLB's load model, every expert's weight split evenly over its copies."""
    L, E = weight_LE.shape
    cnt = np.stack([np.bincount(phy2log_LP[li], minlength=E) for li in range(L)])
    slot_w = np.take_along_axis(weight_LE / np.maximum(cnt, 1), phy2log_LP, axis=1)
    return slot_w.reshape(L, num_gpus, -1).sum(-1)
