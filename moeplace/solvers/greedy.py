"""The first backend: greedy construction plus exact-delta swap local search.

Step 1  Grow node groups: seed with the heaviest free item, add the item most attached to the group
        (pairwise affinity) until the node is full.
Step 2  Map groups to node positions: place groups one by one where they save the most tier cost against
        the groups already placed, then improve with pairwise swaps of positions (a quadratic assignment).
Step 3  Split each node's group over its GPUs (only when a GPU holds several experts).
Step 4  Local search on the exact objective: for each item, try swapping it with items on the nodes it is
        most attached to; keep a swap only if the exact cost of the hyperedges it touches falls.
        Alternate with swaps of whole node positions, until a pass improves nothing or a limit is hit.

The work done is counted in exact evaluations, so the same inputs and seed give the same plan as long as
the search converges or stops on `work_limit` rather than on the wall-clock limit.
"""

from __future__ import annotations

import time

import numpy as np

from moeplace.placement.cost import edge_tier_counts, home_tier_dist
from moeplace.placement.problem import Problem
from moeplace.solvers.affinity import Affinity, build_affinity
from moeplace.solvers.base import STATUS_FEASIBLE, SolveConfig, SolveResult
from moeplace.solvers.registry import register_solver


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


def _group_matrix(aff: Affinity, group_of_item: np.ndarray, num_groups: int) -> np.ndarray:
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
            Cb = C[pos_of[:, None], pos_of[None, :]]  # noqa: F841 (kept simple below)
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


class _Search:
    """Step 4: exact-delta local search state."""

    def __init__(self, problem: Problem, aff: Affinity, item_gpu: np.ndarray) -> None:
        self.p = problem
        self.aff = aff
        self.item_gpu = item_gpu.copy()
        self.gpn = problem.gpus_per_node
        self.epg = problem.experts_per_gpu
        self.ptr, self.inc = problem.traffic.incidence()
        self.home = home_tier_dist(problem) if (problem.traffic.src_H < 0).any() else None
        self.cost_T = problem.tier_costs.array
        self.bytes_H = problem.traffic.bytes_H
        G = problem.num_gpus
        self.gpu_items = np.full((G, self.epg), -1, dtype=np.int64)
        fill = np.zeros(G, dtype=np.int64)
        for i, g in enumerate(self.item_gpu):
            self.gpu_items[g, fill[g]] = i
            fill[g] += 1
        self.layer = problem.item_layer_I
        self.balance = problem.balance_per_layer
        self.layer_cap = problem.layer_cap_per_gpu
        if self.balance:
            self.count_GL = np.zeros((G, problem.model.num_moe_layers), dtype=np.int32)
            np.add.at(self.count_GL, (self.item_gpu, self.layer), 1)
        self.evals = 0

    def edges_of(self, i: int) -> np.ndarray:
        return self.inc[self.ptr[i]:self.ptr[i + 1]]

    def cost_of(self, edges: np.ndarray) -> float:
        counts = edge_tier_counts(self.p, self.item_gpu, edges, self.home)
        return float(self.bytes_H[edges] @ (counts @ self.cost_T))

    def _balance_ok(self, i: int, gi: int, j: int, gj: int) -> bool:
        if not self.balance:
            return True
        li = self.layer[i]
        if j < 0:
            return self.count_GL[gj, li] + 1 <= self.layer_cap
        lj = self.layer[j]
        if li == lj:
            return True
        return self.count_GL[gj, li] + 1 <= self.layer_cap and self.count_GL[gi, lj] + 1 <= self.layer_cap

    def _apply(self, i: int, gi: int, j: int, gj: int) -> None:
        si = int(np.flatnonzero(self.gpu_items[gi] == i)[0])
        sj = int(np.flatnonzero(self.gpu_items[gj] == j)[0])
        self.gpu_items[gi, si], self.gpu_items[gj, sj] = j, i
        self.item_gpu[i] = gj
        if j >= 0:
            self.item_gpu[j] = gi
        if self.balance:
            self.count_GL[gi, self.layer[i]] -= 1
            self.count_GL[gj, self.layer[i]] += 1
            if j >= 0:
                self.count_GL[gj, self.layer[j]] -= 1
                self.count_GL[gi, self.layer[j]] += 1

    def force_swap(self, i: int, j: int, gj: int) -> float:
        """Swap unconditionally (a perturbation); returns the exact delta."""
        gi = int(self.item_gpu[i])
        if gi == gj or not self._balance_ok(i, gi, j, gj):
            return 0.0
        edges = self.edges_of(i) if j < 0 else np.union1d(self.edges_of(i), self.edges_of(j))
        before = self.cost_of(edges)
        self._apply(i, gi, j, gj)
        self.evals += 1
        return self.cost_of(edges) - before

    def reset(self, item_gpu: np.ndarray) -> None:
        self.item_gpu = item_gpu.copy()
        self.gpu_items.fill(-1)
        fill = np.zeros(self.gpu_items.shape[0], dtype=np.int64)
        for i, g in enumerate(self.item_gpu):
            self.gpu_items[g, fill[g]] = i
            fill[g] += 1
        if self.balance:
            self.count_GL.fill(0)
            np.add.at(self.count_GL, (self.item_gpu, self.layer), 1)

    def kick(self, rng: np.random.Generator, num_moves: int) -> float:
        """Perturb: swap random items with random items of other nodes in the same pod."""
        pod = self.p.fabric.node_pod_N
        total = 0.0
        for i in rng.choice(self.p.num_items, size=num_moves, replace=False):
            a = int(self.item_gpu[i]) // self.gpn
            peers = np.flatnonzero((pod == pod[a]) & (np.arange(pod.size) != a))
            if peers.size == 0:
                continue
            b = int(rng.choice(peers))
            g = int(b * self.gpn + rng.integers(self.gpn))
            j = int(self.gpu_items[g, rng.integers(self.epg)])
            total += self.force_swap(int(i), j, g)
        return total

    def try_swap(self, i: int, j: int, gj: int) -> float:
        """Swap item i with item j on GPU gj (j = -1: an empty slot there); keep it if the cost falls."""
        gi = int(self.item_gpu[i])
        if gi == gj or not self._balance_ok(i, gi, j, gj):
            return 0.0
        edges = self.edges_of(i) if j < 0 else np.union1d(self.edges_of(i), self.edges_of(j))
        before = self.cost_of(edges)
        self._apply(i, gi, j, gj)
        after = self.cost_of(edges)
        self.evals += 1
        delta = after - before
        if delta < -1e-9 * max(1.0, abs(before)):
            return delta
        self._apply(i, gj, j, gi)  # undo: i is now on gj, j on gi
        return 0.0

    def item_pass(self, rng: np.random.Generator, deadline: float, work_limit: float) -> float:
        """One pass over all items; returns the total improvement (negative or zero)."""
        total = 0.0
        N = self.p.num_nodes
        for i in rng.permutation(self.p.num_items):
            if time.monotonic() > deadline or self.evals >= work_limit:
                break
            nb, w = self.aff.neighbours(int(i))
            if nb.size == 0:
                continue
            node_aff = np.bincount(self.item_gpu[nb] // self.gpn, weights=w, minlength=N)
            a = int(self.item_gpu[i]) // self.gpn
            pull = node_aff - node_aff[a]
            pull[a] = -np.inf
            for b in np.argsort(-pull, kind="stable")[:2]:
                if pull[b] <= 0:
                    break
                gpus = np.arange(b * self.gpn, (b + 1) * self.gpn)
                cands = self.gpu_items[gpus].ravel()
                cand_gpu = np.repeat(gpus, self.epg)
                # rank partners by how little they are attached to node b (and how much to node a)
                scores = []
                for j in cands:
                    if j < 0:
                        scores.append(-np.inf)
                        continue
                    nbj, wj = self.aff.neighbours(int(j))
                    nj = self.item_gpu[nbj] // self.gpn
                    scores.append(float(wj[nj == b].sum() - wj[nj == a].sum()))
                order = np.argsort(np.asarray(scores), kind="stable")[:3]
                done = False
                for idx in order:
                    d = self.try_swap(int(i), int(cands[idx]), int(cand_gpu[idx]))
                    if d < 0:
                        total += d
                        done = True
                        break
                if done:
                    break
        return total

    def node_pass(self, rng: np.random.Generator, deadline: float, work_limit: float) -> float:
        """Swap whole node contents between positions, guided by the node-level traffic matrix."""
        N, gpn = self.p.num_nodes, self.gpn
        node_of_item = self.item_gpu // gpn
        M = _group_matrix(self.aff, node_of_item, N)
        C = self.p.tier_costs.array[self.p.fabric.node_tier_NN]
        total = 0.0
        for a in rng.permutation(N):
            if time.monotonic() > deadline or self.evals >= work_limit:
                break
            diff_M = M[a][None, :] - M
            diff_C = C - C[a][None, :]
            delta = (diff_M * diff_C).sum(axis=1)
            idx = np.arange(N)
            delta -= diff_M[idx, a] * diff_C[idx, a] + diff_M[idx, idx] * diff_C[idx, idx]
            delta[a] = 0.0
            b = int(np.argmin(delta))
            if delta[b] >= -1e-9:
                continue
            d = self._swap_nodes(a, b)
            if d < 0:
                total += d
                M[[a, b]] = M[[b, a]]
                M[:, [a, b]] = M[:, [b, a]]
        return total

    def _swap_nodes(self, a: int, b: int) -> float:
        gpn = self.gpn
        ga = np.arange(a * gpn, (a + 1) * gpn)
        gb = np.arange(b * gpn, (b + 1) * gpn)
        items = np.concatenate([self.gpu_items[ga].ravel(), self.gpu_items[gb].ravel()])
        items = items[items >= 0]
        if items.size == 0:
            return 0.0
        edges = np.unique(np.concatenate([self.edges_of(int(i)) for i in items]))
        before = self.cost_of(edges)
        self._move_nodes(ga, gb)
        after = self.cost_of(edges)
        self.evals += 1
        if after - before < -1e-9 * max(1.0, abs(before)):
            return after - before
        self._move_nodes(ga, gb)
        return 0.0

    def _move_nodes(self, ga: np.ndarray, gb: np.ndarray) -> None:
        ia = self.gpu_items[ga].copy()
        ib = self.gpu_items[gb].copy()
        self.gpu_items[ga], self.gpu_items[gb] = ib, ia
        for gpus, items in ((gb, ia), (ga, ib)):
            for g, row in zip(gpus, items):
                for it in row:
                    if it >= 0:
                        self.item_gpu[it] = g
        if self.balance:
            self.count_GL[ga], self.count_GL[gb] = self.count_GL[gb].copy(), self.count_GL[ga].copy()


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
    M = _group_matrix(aff, group_of_item, N)
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


def _descend(search: _Search, rng: np.random.Generator, deadline: float, work_limit: float,
             history: list, progress, obj: float) -> tuple[float, str]:
    """Item and node passes until a pass gains nothing or a limit is hit; returns (objective, stop)."""
    while True:
        gain = search.item_pass(rng, deadline, work_limit)
        gain += search.node_pass(rng, deadline, work_limit)
        obj += gain
        history.append({"evaluations": search.evals, "objective": round(obj, 3)})
        if progress is not None:
            progress({"evaluations": search.evals, "objective": obj})
        if time.monotonic() > deadline:
            return obj, "time_limit"
        if search.evals >= work_limit:
            return obj, "work_limit"
        if gain > -1e-9 * max(1.0, abs(obj)):
            return obj, "converged"


DEFAULT_WORK = 40_000


@register_solver("greedy", "greedy affinity construction + exact-delta swap local search with kicks (any size)")
def solve_greedy(problem: Problem, config: SolveConfig, hint: np.ndarray | None = None) -> SolveResult:
    """Steps 1-4 from every start (the hint, the greedy construction, layer-major), then iterated local
    search (kick, descend, keep the best) from the best of them until the work or time limit."""
    from moeplace.placement.baselines import layer_major
    from moeplace.placement.cost import objective
    from moeplace.placement.validate import is_feasible

    start = time.monotonic()
    deadline = start + config.time_limit_s
    work_limit = float(DEFAULT_WORK if config.work_limit is None else config.work_limit)
    rng = np.random.default_rng(config.seed)
    aff = build_affinity(problem.traffic)
    starts: list[tuple[str, np.ndarray]] = []
    if hint is not None:
        starts.append(("hint", hint.copy()))
    starts.append(("greedy", construct(problem, aff, rng)))
    lm = layer_major(problem)
    if is_feasible(problem, lm):
        starts.append(("layer-major", lm))
    history: list[dict] = []
    best_obj, best, stop, best_start = float("inf"), None, "converged", ""
    search: _Search | None = None
    per_start = work_limit / (2 * len(starts))
    for name, init in starts:
        search = _Search(problem, aff, init) if search is None else search
        search.reset(init)
        obj0 = objective(problem, init)
        obj, stop = _descend(search, rng, deadline, search.evals + per_start, history, config.progress, obj0)
        if obj < best_obj:
            best_obj, best, best_start = obj, search.item_gpu.copy(), name
        if time.monotonic() > deadline:
            break
    assert search is not None and best is not None
    kicks = accepted = 0
    search.reset(best)
    kick_size = max(2, problem.num_items // 100)
    while time.monotonic() <= deadline and search.evals < work_limit:
        kicks += 1
        obj = best_obj + search.kick(rng, kick_size)
        obj, stop = _descend(search, rng, deadline, work_limit, history, config.progress, obj)
        if obj < best_obj - 1e-9 * max(1.0, best_obj):
            best_obj, best = obj, search.item_gpu.copy()
            accepted += 1
        else:
            search.reset(best)
    if search.evals >= work_limit:
        stop = "work_limit"
    elif time.monotonic() > deadline:
        stop = "time_limit"
    final = objective(problem, best)
    return SolveResult(solver="greedy", item_gpu_I=best, objective=final, bound=0.0, status=STATUS_FEASIBLE,
                       wall_time_s=time.monotonic() - start, work=float(search.evals), stop_reason=stop,
                       details={"best_start": best_start, "kicks": kicks, "kicks_accepted": accepted,
                                "starts": [name for name, _ in starts]})
