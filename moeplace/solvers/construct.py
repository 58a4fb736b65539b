"""Steps 1-3 of the greedy backend: a feasible placement built from the pairwise affinity graph.

Step 1  Grow node groups: seed with the heaviest free item, add the item most attached to the group
        until the node is full (respecting balance per layer).
Step 2  Map groups to node positions: place groups one by one where they save the most tier cost against
        the groups already placed, then improve with pairwise swaps of positions (a quadratic assignment on
        the group-level traffic matrix).
Step 3  Split each node's group over its GPUs (only when a GPU holds several experts).
"""

from __future__ import annotations

import numpy as np

from moeplace.placement.problem import Problem
from moeplace.solvers.affinity import Affinity


def grow_groups(aff: Affinity, num_items: int, cap: int, num_groups: int, item_layer_I: np.ndarray,
                layer_cap: int) -> list[list[int]]:
    """Step 1: greedy graph growing into groups of at most `cap` items, at most `layer_cap` per layer."""
    degree = np.zeros(num_items)
    np.add.at(degree, np.repeat(np.arange(num_items), np.diff(aff.ptr)), aff.w)
    seed_order = np.lexsort((np.arange(num_items), -degree))
    free = np.ones(num_items, dtype=bool)
    gain = np.zeros(num_items)
    groups: list[list[int]] = []

    def heaviest_free() -> int:
        idx = np.flatnonzero(free[seed_order])
        return int(seed_order[idx[0]]) if idx.size else -1

    for _ in range(num_groups):
        first = heaviest_free()
        if first < 0:
            groups.append([])
            continue
        members = [first]
        free[first] = False
        per_layer = {int(item_layer_I[first]): 1}
        touched = []
        nb, w = aff.neighbours(first)
        gain[nb] += w
        touched.append(nb)
        blocked: list[int] = []
        while len(members) < cap:
            score = np.where(free, gain, -np.inf)
            cand = int(np.argmax(score))
            if not np.isfinite(score[cand]):
                break
            if score[cand] <= 0:
                cand = heaviest_free()  # nothing attached: take the heaviest free item instead
            lay = int(item_layer_I[cand])
            if per_layer.get(lay, 0) >= layer_cap:
                free[cand] = False
                blocked.append(cand)
                continue
            members.append(cand)
            free[cand] = False
            per_layer[lay] = per_layer.get(lay, 0) + 1
            nb, w = aff.neighbours(cand)
            gain[nb] += w
            touched.append(nb)
        free[blocked] = True
        for nb in touched:
            gain[nb] = 0.0
        groups.append(members)
    return groups


def group_matrix(aff: Affinity, group_of_item: np.ndarray, num_groups: int) -> np.ndarray:
    rows = np.repeat(np.arange(group_of_item.size), np.diff(aff.ptr))
    M = np.zeros((num_groups, num_groups))
    np.add.at(M, (group_of_item[rows], group_of_item[aff.idx]), aff.w)
    np.fill_diagonal(M, 0.0)
    return M


def map_groups(M: np.ndarray, C: np.ndarray, rng: np.random.Generator, max_passes: int = 20) -> np.ndarray:
    """Step 2: position of every group (a permutation) for low sum M[a,b] * C[pos a, pos b]."""
    n = M.shape[0]
    cmax = C.max()
    pos_of = np.full(n, -1)
    placed_groups: list[int] = []
    free = np.ones(n, dtype=bool)
    for p in range(n):
        if not placed_groups:
            g = int(np.argmax(M.sum(axis=1)))
        else:
            pg = np.asarray(placed_groups)
            score = M[:, pg] @ (cmax - C[p, pos_of[pg]])
            score = np.where(free, score, -np.inf)
            g = int(np.argmax(score))
        pos_of[g] = p
        free[g] = False
        placed_groups.append(g)
    for _ in range(max_passes):
        improved = False
        for a in rng.permutation(n):
            pa = pos_of[a]
            Ca = C[pa, pos_of]            # cost from a's position to every group's position
            # delta of swapping positions of a and each b:
            # sum_k (M[a,k] - M[b,k]) * (C[pb, pos k] - C[pa, pos k]) for k != a, b
            Cpb = C[pos_of][:, pos_of]     # [b, k] = C[pos b, pos k]
            diff_M = M[a][None, :] - M       # [b, k]
            diff_C = Cpb - Ca[None, :]       # [b, k]
            delta = (diff_M * diff_C).sum(axis=1)
            # correct the k = a and k = b terms (they were included above)
            delta -= diff_M[np.arange(n), a] * diff_C[np.arange(n), a]
            delta -= diff_M[np.arange(n), np.arange(n)] * diff_C[np.arange(n), np.arange(n)]
            delta[a] = 0.0
            b = int(np.argmin(delta))
            if delta[b] < -1e-9:
                pos_of[a], pos_of[b] = pos_of[b], pos_of[a]
                improved = True
        if not improved:
            break
    return pos_of


def construct(problem: Problem, aff: Affinity, rng: np.random.Generator) -> np.ndarray:
    """Steps 1-3: a feasible placement built from the affinity graph."""
    N, gpn, epg = problem.num_nodes, problem.gpus_per_node, problem.experts_per_gpu
    layer = problem.item_layer_I
    node_layer_cap = problem.layer_cap_per_gpu * gpn
    groups = grow_groups(aff, problem.num_items, problem.node_capacity, N, layer, node_layer_cap)
    leftover = np.setdiff1d(np.arange(problem.num_items), np.concatenate([np.asarray(g, dtype=np.int64)
                                                                          for g in groups]))
    if leftover.size:  # items blocked by balance: fill remaining room anywhere it holds
        for it in leftover:
            for g in groups:
                if len(g) < problem.node_capacity and sum(layer[x] == layer[it] for x in g) < node_layer_cap:
                    g.append(int(it))
                    break
            else:
                raise AssertionError("greedy could not place every item under balance per layer")
    group_of_item = np.empty(problem.num_items, dtype=np.int64)
    for gi, g in enumerate(groups):
        group_of_item[g] = gi
    M = group_matrix(aff, group_of_item, N)
    C = problem.tier_costs.array[problem.fabric.node_tier_NN]
    pos = map_groups(M, C, rng)
    item_gpu = np.empty(problem.num_items, dtype=np.int64)
    for gi, g in enumerate(groups):
        node = int(pos[gi])
        if epg == 1:
            for local, it in enumerate(g):
                item_gpu[it] = node * gpn + local
            continue
        # Step 3: split the node's items over its GPUs, layer-balanced round-robin, affinity order
        sub = grow_groups(_restrict(aff, g), len(g), epg, gpn, layer[np.asarray(g)] if g else layer[:0],
                          problem.layer_cap_per_gpu)
        placed = set()
        for local, members in enumerate(sub):
            for m in members:
                item_gpu[g[m]] = node * gpn + local
                placed.add(m)
        rest = [m for m in range(len(g)) if m not in placed]
        for m in rest:
            counts = np.bincount(item_gpu[[g[x] for x in placed]] - node * gpn, minlength=gpn) if placed else \
                np.zeros(gpn, dtype=np.int64)
            local = int(np.argmin(counts))
            item_gpu[g[m]] = node * gpn + local
            placed.add(m)
    return item_gpu


def _restrict(aff: Affinity, members: list[int]) -> Affinity:
    """The affinity graph induced on `members`, renumbered 0..len-1."""
    index = {m: k for k, m in enumerate(members)}
    ptr = [0]
    idx: list[int] = []
    w: list[float] = []
    for m in members:
        nb, ww = aff.neighbours(m)
        for x, y in zip(nb.tolist(), ww.tolist()):
            if x in index:
                idx.append(index[x])
                w.append(y)
        ptr.append(len(idx))
    return Affinity(ptr=np.asarray(ptr, dtype=np.int64), idx=np.asarray(idx, dtype=np.int64),
                    w=np.asarray(w, dtype=np.float64))
