"""`moeplace.rebalance`: DeepSeek EPLB's signature and outputs, never worse on balance, fewer cross-node bytes.

    phy2log, log2phy, logcnt = moeplace.rebalance(weight, num_replicas, num_groups, num_nodes, num_gpus)

weight [layers, experts] (tokens per expert, numpy or torch), num_replicas = physical slots per layer
(experts + redundant; a multiple of num_gpus), num_groups expert groups (DeepSeek-V3: 8), num_nodes,
num_gpus. Outputs as EPLB's `rebalance_experts`, in the input's kind (torch in, torch out): phy2log int64
[L, num_replicas], log2phy int64 [L, E, max copies] (-1 padded), logcnt int64 [L, E]. Physical slot p lives
on GPU p // (num_replicas / num_gpus); GPU g on node g // (num_gpus / num_nodes).

How (per layer, all steps deterministic):
  Step 1  EPLB's own algorithm (`moeplace.ep.eplb`), hierarchical when groups divide over nodes, and its
          global policy; keep the one whose busiest GPU carries less (EPLB's load model: an expert's tokens
          split evenly over its copies). That busiest-GPU load is the layer's cap: balance is never worse.
  Step 2  (with `coact`) swap pairs of physical slots between nodes while every GPU stays under the cap,
          best swap first, to minimise the co-activation that crosses nodes:
              Q = sum_{e != f} coact[e, f] x_e^T D x_f,
          x_e [nodes] = the share of e's copies on each node (a token picks a copy of each of its experts
          independently), D = node_cost (default 1 off the diagonal: "crosses a node boundary"; a fabric's
          hops give tier-aware costs). A swap never moves a copy onto a node that already holds a copy of
          the same expert, so copies spread over distinct nodes (SGLang's same-GPU rule rewards that).
          With token paths (not just counts) and Mt-KaHyPar installed, Step 2 also starts from a km1 partition
          of the slots into nodes (`moeplace.ep.partition`), repaired under the cap by swaps that add the
          least Q, and keeps per layer the result that touches fewer remote nodes on those paths.
Work is bounded by `max_swaps` per layer (not by a clock): the same inputs give the same outputs.
"""

from __future__ import annotations

import numpy as np

from moeplace.ep.eplb import eplb_rebalance, gpu_load_LG, hierarchical, log2phy_of, phyrank_of

MAX_SWAPS = 2000


def _as_numpy(x):
    if x is None:
        return None, None
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().double().numpy(), x
    return np.asarray(x, dtype=np.float64), None


def _back(arr: np.ndarray, like):
    if like is None:
        return arr
    import torch

    return torch.from_numpy(np.ascontiguousarray(arr)).to(torch.int64)


def check_shape(num_experts: int, num_replicas: int, num_groups: int, num_nodes: int, num_gpus: int) -> None:
    """ValueError with the arithmetic when the engines' layout cannot hold."""
    if num_replicas < num_experts:
        raise ValueError(f"num_replicas {num_replicas} < {num_experts} experts: every expert needs a slot")
    if num_gpus <= 0 or num_replicas % num_gpus:
        raise ValueError(f"num_replicas {num_replicas} is not a multiple of num_gpus {num_gpus}: every GPU holds "
                         f"the same number of slots of every layer")
    if num_nodes <= 0 or num_gpus % num_nodes:
        raise ValueError(f"num_gpus {num_gpus} is not a multiple of num_nodes {num_nodes}")
    if num_groups <= 0 or num_experts % num_groups:
        raise ValueError(f"{num_experts} experts do not split into num_groups {num_groups}")


def node_cost_of(fabric, num_nodes: int) -> np.ndarray:
    """float [N, N]: the cost of a pair of copies on two nodes (0 on the diagonal)."""
    if fabric is None:
        return 1.0 - np.eye(num_nodes)
    cost = np.asarray(getattr(fabric, "node_hops_NN", fabric), dtype=np.float64)
    if cost.shape != (num_nodes, num_nodes):
        raise ValueError(f"fabric: node cost is {cost.shape}, expected ({num_nodes}, {num_nodes})")
    cost = cost.copy()
    np.fill_diagonal(cost, 0.0)
    return cost


def coact_from_topk(topk_TLK: np.ndarray, num_experts: int) -> np.ndarray:
    """float [L, E, E]: tokens that chose both e and f at each layer (diagonal 0), from topk ids [T, L, k]."""
    T, L, k = topk_TLK.shape
    out = np.zeros((L, num_experts, num_experts))
    for li in range(L):
        ids = topk_TLK[:, li, :].astype(np.int64)
        for a in range(k):
            for b in range(k):
                if a != b:
                    np.add.at(out[li], (ids[:, a], ids[:, b]), 1.0)
    return out


def best_balance(weight_LE: np.ndarray, num_replicas: int, num_groups: int, num_nodes: int,
                 num_gpus: int) -> np.ndarray:
    """Step 1: per layer, EPLB's policy or its global one, whichever has the lighter busiest GPU."""
    first, _, _ = eplb_rebalance(weight_LE, num_replicas, num_groups, num_nodes, num_gpus)
    other, _, _ = hierarchical(weight_LE, num_replicas, 1, 1, num_gpus)
    a = gpu_load_LG(weight_LE, first, num_gpus).max(1)
    b = gpu_load_LG(weight_LE, other, num_gpus).max(1)
    return np.where((b < a - 1e-12 * np.maximum(a, 1.0))[:, None], other, first)


def cut_swaps(weight_E: np.ndarray, phy2log_P: np.ndarray, coact_EE: np.ndarray, cost_NN: np.ndarray,
              num_gpus: int, num_nodes: int, cap: float, max_swaps: int = MAX_SWAPS) -> np.ndarray:
    """Step 2 for one layer: phy2log after best-first cross-node swaps that lower Q under the GPU cap."""
    E, P = weight_E.size, phy2log_P.size
    per_gpu, gpn = P // num_gpus, num_gpus // num_nodes
    phy = phy2log_P.copy()
    gpu = np.arange(P) // per_gpu
    node = gpu // gpn
    cnt = np.bincount(phy, minlength=E).astype(np.float64)
    C = (coact_EE + coact_EE.T) / 2.0
    np.fill_diagonal(C, 0.0)
    X = np.zeros((E, num_nodes))
    np.add.at(X, (phy, node), 1.0)
    held = X.copy()
    X /= cnt[:, None]
    A = C @ X @ cost_NN
    sw = weight_E / cnt
    load = np.bincount(gpu, weights=sw[phy], minlength=num_gpus)
    slack = cap * (1 + 1e-12) + 1e-12
    other_node = node[:, None] != node[None, :]
    for _ in range(max_swaps):
        e, a, c, s = phy, node, cnt[phy], sw[phy]
        G = (A[e][:, a] - A[e, a][:, None]) / c[:, None]                 # G[p, q]: p's expert to q's node
        d = G + G.T + 2.0 * C[e][:, e] * cost_NN[a][:, a] / (c[:, None] * c[None, :])
        ok = other_node & (e[:, None] != e[None, :])
        ok &= (load[gpu][:, None] - s[:, None] + s[None, :] <= slack)
        ok &= (load[gpu][None, :] - s[None, :] + s[:, None] <= slack)
        H = held[e][:, a] == 0                                               # p's expert has no copy on q's node
        ok &= H & H.T
        d = np.where(ok, d, 0.0)
        flat = int(np.argmin(d))
        i, j = divmod(flat, P)
        if d[i, j] >= -1e-12 * max(1.0, float(np.abs(A).max())):
            break
        ei, ej, ni, nj = int(phy[i]), int(phy[j]), int(node[i]), int(node[j])
        for ex, src, dst in ((ei, ni, nj), (ej, nj, ni)):
            dx = np.zeros(num_nodes)
            dx[src], dx[dst] = -1.0 / cnt[ex], 1.0 / cnt[ex]
            X[ex] += dx
            held[ex, src] -= 1
            held[ex, dst] += 1
            A += np.outer(C[:, ex], dx @ cost_NN)
        load[gpu[i]] += sw[ej] - sw[ei]
        load[gpu[j]] += sw[ei] - sw[ej]
        phy[i], phy[j] = ej, ei
    return phy


def rebalance(weight, num_replicas: int, num_groups: int, num_nodes: int, num_gpus: int, *, coact=None,
              fabric=None, max_swaps: int = MAX_SWAPS, partition: bool = True, seed: int = 0):
    """(phy2log, log2phy, logcnt) as DeepSeek EPLB's `rebalance_experts`; see the module docstring.

    coact: optional co-activation [L, E, E] (tokens that chose both experts; numpy or torch), or token
    paths int [T, L, k]. fabric: optional node cost [N, N] (or an object with `node_hops_NN`).
    partition: with token paths and Mt-KaHyPar installed, also start Step 2 from a km1 partition of the slots
    (repaired under the cap) and keep, per layer, the start whose result touches fewer remote nodes.
    """
    w, like = _as_numpy(weight)
    if w.ndim != 2:
        raise ValueError(f"weight must be [layers, experts], got shape {w.shape}")
    L, E = w.shape
    check_shape(E, int(num_replicas), int(num_groups), int(num_nodes), int(num_gpus))
    phy2log = best_balance(w, num_replicas, num_groups, num_nodes, num_gpus)
    co, _ = _as_numpy(coact)
    if co is not None:
        paths = None
        if co.ndim == 3 and co.shape[1:] != (E, E) and co.shape[1] == L:
            paths = co.astype(np.int64)
            co = coact_from_topk(paths, E)
        if co.shape != (L, E, E):
            raise ValueError(f"coact must be [{L}, {E}, {E}] or token paths [T, {L}, k], got shape {co.shape}")
        cost = node_cost_of(fabric, num_nodes)
        caps = gpu_load_LG(w, phy2log, num_gpus).max(1)
        phy2log = np.stack([_cut_layer(w[li], phy2log[li], co[li], None if paths is None else paths[:, li], cost,
                                       num_gpus, num_nodes, float(caps[li]), max_swaps, partition, seed)
                            for li in range(L)])
    logcnt = np.stack([np.bincount(phy2log[li], minlength=E) for li in range(L)]).astype(np.int64)
    log2phy = log2phy_of(phy2log, phyrank_of(phy2log), logcnt)
    return _back(phy2log, like), _back(log2phy, like), _back(logcnt, like)


def _cut_layer(w_E, phy_P, co_EE, ids_TK, cost, num_gpus, num_nodes, cap, max_swaps, partition, seed):
    from moeplace.ep import partition as part
    from moeplace.ep.score import layer_remote_nodes

    best = cut_swaps(w_E, phy_P, co_EE, cost, num_gpus, num_nodes, cap, max_swaps)
    if ids_TK is None or not partition or not part.available() or num_nodes == 1:
        return best
    sw = w_E / np.bincount(phy_P, minlength=w_E.size)
    start = part.pack_nodes(phy_P, sw[phy_P], part.km1_nodes(phy_P, ids_TK, num_nodes, seed), num_gpus, num_nodes)
    fixed = part.repair(start, w_E, co_EE, cost, num_gpus, num_nodes, cap)
    if fixed is None:
        return best
    other = cut_swaps(w_E, fixed, co_EE, cost, num_gpus, num_nodes, cap, max_swaps)
    score = [layer_remote_nodes(x, ids_TK, num_gpus, num_nodes) for x in (best, other)]
    return other if score[1] < score[0] - 1e-12 else best
