"""Step 4: local search on the exact objective.

For each item, try swapping it with items on the nodes it is most attached to (pairwise affinity picks the
candidates); keep a swap only if the exact cost of the hyperedges it touches falls. Alternate with swaps of
whole node positions guided by the node-level traffic matrix. Deltas use the objective's own kernel
(`moeplace.placement.cost.edge_cost_total`), so the running objective always equals a recomputation.
"""

from __future__ import annotations

import numpy as np

from moeplace.placement.cost import edge_cost_total, edge_costs, home_tier_dist
from moeplace.placement.traffic import HOME, PAD
from moeplace.placement.problem import Problem
from moeplace.solvers.affinity import Affinity
from moeplace.solvers.budget import STOP_CONVERGED, Budget
from moeplace.solvers.construct import group_matrix


class LocalSearch:
    """Exact-delta swap local search over a complete assignment (item and node moves, kicks)."""

    def __init__(self, problem: Problem, aff: Affinity, item_gpu: np.ndarray, *, origin: np.ndarray | None = None,
                 max_moves: int | None = None, move_cost: float = 0.0) -> None:
        """origin, max_moves, move_cost: re-planning; an item is moved when its GPU differs from `origin`,
        at most `max_moves` items may be, and each costs `move_cost` (objective units) in the search."""
        self.p = problem
        self.origin = origin
        self.max_moves = max_moves
        self.move_cost = float(move_cost)
        self.aff = aff
        self._set(item_gpu)
        self.gpn = problem.gpus_per_node
        self.epg = problem.experts_per_gpu
        self.ptr, self.inc = problem.traffic.incidence()
        self.home = home_tier_dist(problem) if (problem.traffic.src_H < 0).any() else None
        self.home_cost_N = None if self.home is None else self.home @ problem.tier_costs.array
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
        self.moved = self._count_moved()
        self._mark: np.ndarray | None = None

    def _count_moved(self) -> int:
        return 0 if self.origin is None else int((self.item_gpu != self.origin).sum())

    def _moves_delta(self, i: int, gi: int, j: int, gj: int) -> int:
        if self.origin is None:
            return 0
        o = self.origin
        d = int(gj != o[i]) - int(gi != o[i])
        if j >= 0:
            d += int(gi != o[j]) - int(gj != o[j])
        return d

    def _allowed(self, i: int, gi: int, j: int, gj: int) -> bool:
        if not self._balance_ok(i, gi, j, gj):
            return False
        return self.max_moves is None or self.moved + self._moves_delta(i, gi, j, gj) <= self.max_moves

    @property
    def replanning(self) -> bool:
        return self.origin is not None

    def edges_of(self, i: int) -> np.ndarray:
        return self.inc[self.ptr[i]:self.ptr[i + 1]]

    def cost_of(self, edges: np.ndarray) -> float:
        return edge_cost_total(self.p, self.item_gpu, edges, self.home_cost_N)

    def swap_costs(self, edges: np.ndarray, i: int, gi: int, j: int, gj: int) -> tuple[float, float]:
        """The cost of `edges` now and with i on gj and j (>= 0) on gi: one call of the objective's kernel."""
        tr = self.p.traffic
        src, dst = tr.src_H[edges], tr.dst_HK[edges]
        src_gpu = self._gpu_ext[src]
        dst_gpu = self._gpu_ext[dst]
        src_new = np.where(src == i, gj, src_gpu)
        dst_new = np.where(dst == i, gj, dst_gpu)
        if j >= 0:
            src_new = np.where(src == j, gi, src_new)
            dst_new = np.where(dst == j, gi, dst_new)
        cost = edge_costs(self.p, np.concatenate([src_gpu, src_new]), np.concatenate([dst_gpu, dst_new]),
                          self.home_cost_N)
        w = self.bytes_H[edges]
        return float(w @ cost[:edges.size]), float(w @ cost[edges.size:])

    def edges_of_items(self, items: np.ndarray) -> np.ndarray:
        """The hyperedges of any of `items`, each once, in ascending order (a mark per hyperedge, no sort)."""
        if self._mark is None:
            self._mark = np.zeros(self.bytes_H.size, dtype=bool)
        for i in items:
            self._mark[self.edges_of(int(i))] = True
        edges = np.flatnonzero(self._mark)
        self._mark[edges] = False
        return edges

    def edges_of_pair(self, i: int, j: int) -> np.ndarray:
        """The hyperedges of item i or item j (j = -1: none), each once, in ascending order."""
        ei = self.edges_of(i)
        if j < 0:
            return ei
        ej = self.edges_of(j)
        pos = np.minimum(np.searchsorted(ei, ej), ei.size - 1)
        return np.sort(np.concatenate([ei, ej[ei[pos] != ej]])) if ei.size else ej

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
        if gi == gj or not self._allowed(i, gi, j, gj):
            return 0.0
        edges = self.edges_of_pair(i, j)
        before = self.cost_of(edges)
        dm = self._moves_delta(i, gi, j, gj)
        self._apply(i, gi, j, gj)
        self.moved += dm
        self.evals += 1
        return self.cost_of(edges) - before + self.move_cost * dm

    def _set(self, item_gpu: np.ndarray) -> None:
        """item_gpu is a view of a buffer one longer, whose last entry is HOME = PAD = -1: indexing it with a
        hyperedge's members (-1 for a HOME source or padding) gives their GPUs, -1 kept, in one step."""
        assert HOME == PAD == -1
        self._gpu_ext = np.append(np.asarray(item_gpu, dtype=np.int64), -1)
        self.item_gpu = self._gpu_ext[:-1]

    def reset(self, item_gpu: np.ndarray) -> None:
        self._set(item_gpu)
        self.gpu_items.fill(-1)
        fill = np.zeros(self.gpu_items.shape[0], dtype=np.int64)
        for i, g in enumerate(self.item_gpu):
            self.gpu_items[g, fill[g]] = i
            fill[g] += 1
        if self.balance:
            self.count_GL.fill(0)
            np.add.at(self.count_GL, (self.item_gpu, self.layer), 1)
        self.moved = self._count_moved()

    def place_on_node(self, node: int, items: np.ndarray) -> None:
        """Put `items` on the GPUs of `node` in order (one expert per GPU), emptying the rest."""
        assert not self.replanning, "whole-node moves are off while re-planning"
        gpus = np.arange(node * self.gpn, (node + 1) * self.gpn)
        if self.balance:
            for g in gpus:
                for it in self.gpu_items[g]:
                    if it >= 0:
                        self.count_GL[g, self.layer[it]] -= 1
        self.gpu_items[gpus] = -1
        for k, it in enumerate(items):
            g = gpus[k // self.epg]
            self.gpu_items[g, k % self.epg] = it
            self.item_gpu[it] = g
            if self.balance:
                self.count_GL[g, self.layer[it]] += 1

    def kick(self, rng: np.random.Generator, num_moves: int) -> float:
        """Perturb: swap random items with random items of other nodes in the same pod."""
        pod = self.p.fabric.node_pod_N
        self.evals += num_moves  # count attempts, so that a kick that can change nothing still uses work
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
        if gi == gj or not self._allowed(i, gi, j, gj):
            return 0.0
        before, after = self.swap_costs(self.edges_of_pair(i, j), i, gi, j, gj)
        self.evals += 1
        dm = self._moves_delta(i, gi, j, gj)
        delta = after - before + self.move_cost * dm
        if delta < -1e-9 * max(1.0, abs(before)):
            self._apply(i, gi, j, gj)
            self.moved += dm
            return delta
        return 0.0

    def item_pass(self, rng: np.random.Generator, budget: Budget) -> float:
        """One pass over all items; returns the total improvement (negative or zero)."""
        total = 0.0
        N = self.p.num_nodes
        for i in rng.permutation(self.p.num_items):
            if budget.exhausted(self.evals):
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

    def node_pass(self, rng: np.random.Generator, budget: Budget) -> float:
        """Swap whole node contents between positions, guided by the node-level traffic matrix."""
        if self.replanning:
            return 0.0
        N, gpn = self.p.num_nodes, self.gpn
        node_of_item = self.item_gpu // gpn
        M = group_matrix(self.aff, node_of_item, N)
        C = self.p.tier_costs.array[self.p.fabric.node_tier_NN]
        total = 0.0
        for a in rng.permutation(N):
            if budget.exhausted(self.evals):
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
        edges = self.edges_of_items(items)
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


def descend(search: LocalSearch, rng: np.random.Generator, budget: Budget, history: list, progress,
            obj: float) -> tuple[float, str]:
    """Item and node passes until a pass gains nothing or the budget is exhausted; returns (objective, stop)."""
    while True:
        gain = search.item_pass(rng, budget)
        gain += search.node_pass(rng, budget)
        obj += gain
        history.append({"evaluations": search.evals, "objective": round(obj, 3)})
        if progress is not None:
            progress({"evaluations": search.evals, "objective": obj})
        if budget.exhausted(search.evals):
            return obj, budget.root.fired or budget.fired
        if gain > -1e-9 * max(1.0, abs(obj)):
            return obj, STOP_CONVERGED
