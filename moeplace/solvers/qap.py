"""The generic core on generic instances: quadratic assignment and capacitated partitioning.

An instance is a flow matrix F (items x items), a distance matrix D (bins x bins) and bin capacities; an
assignment a (bin of every item) costs

    sum_{i, j} F[i, j] * D[a(i), a(j)]      (the QAPLIB convention; i = j terms included)

Two doors:
- `as_problem(F, fabric, tier_costs, experts_per_gpu)` turns flows on a tree fabric (D given by tiers, so
  capacitated graph partitioning is the one-leaf case, `partition_problem`) into a placement `Problem`:
  every registered backend (greedy, lns, cpsat, ilp, ilp-highs) and every bound then applies unchanged.
- `solve_qap(instance)` handles any D (QAPLIB instances) with the same tools as the placement backends:
  exact-delta swap local search from many starts, then a MIP (SCIP or HiGHS through MathOpt) on the
  Adams-Johnson linearization y[i,a,j,b] = x[i,a] x[j,b], whose dual bound is proven.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moeplace.errors import InfeasibleError, InputError
from moeplace.placement.problem import Problem
from moeplace.placement.traffic import Traffic
from moeplace.solvers import linprog
from moeplace.solvers.pairlp import INF, _RowBuilder
from moeplace.topologies.base import Fabric, TierCosts, default_hosts, tiers_from_positions

MAX_PRODUCTS = 40_000


@dataclass(frozen=True, eq=False)
class QAPInstance:
    flow_II: np.ndarray
    dist_BB: np.ndarray
    capacity_B: np.ndarray
    name: str = "qap"

    def __post_init__(self) -> None:
        n, b = self.flow_II.shape[0], self.dist_BB.shape[0]
        if self.flow_II.shape != (n, n) or self.dist_BB.shape != (b, b) or self.capacity_B.shape != (b,):
            raise InputError(f"flow {self.flow_II.shape}, distance {self.dist_BB.shape} and capacity "
                             f"{self.capacity_B.shape} do not match", field=self.name)
        if int(self.capacity_B.sum()) < n:
            raise InfeasibleError(f"{n} items do not fit {b} bins of total capacity {int(self.capacity_B.sum())}",
                                  field=self.name)

    @property
    def num_items(self) -> int:
        return int(self.flow_II.shape[0])

    @property
    def num_bins(self) -> int:
        return int(self.dist_BB.shape[0])


@dataclass(frozen=True)
class QAPResult:
    bin_I: np.ndarray
    objective: float
    bound: float
    optimal: bool
    wall_time_s: float
    method: str


def read_qaplib(path: str | Path) -> QAPInstance:
    """A QAPLIB `.dat` file: n, then the n x n matrices A (flow) and B (distance)."""
    p = Path(path)
    try:
        v = np.array(p.read_text().split(), dtype=np.float64)
    except ValueError as err:
        raise InputError(f"not a QAPLIB instance: {err}", source=str(p)) from None
    n = int(v[0]) if v.size else 0
    if n <= 0 or v.size != 1 + 2 * n * n:
        raise InputError(f"expected n and two n x n matrices, got {v.size} numbers for n={n}", source=str(p))
    return QAPInstance(v[1:1 + n * n].reshape(n, n), v[1 + n * n:].reshape(n, n), np.ones(n, dtype=np.int64),
                       name=p.stem)


def qap_objective(inst: QAPInstance, bin_I: np.ndarray) -> float:
    return float((inst.flow_II * inst.dist_BB[np.ix_(bin_I, bin_I)]).sum())


def _move_delta(F: np.ndarray, D: np.ndarray, a: np.ndarray, i: int, b: int) -> float:
    """Cost change of moving item i to bin b, all others fixed."""
    old = a[i]
    d = F[i] @ (D[b, a] - D[old, a]) + F[:, i] @ (D[a, b] - D[a, old])
    # the i-i term was counted twice above with stale a[i]; fix it exactly
    d -= F[i, i] * (D[b, old] - D[old, old]) + F[i, i] * (D[old, b] - D[old, old])
    return float(d + F[i, i] * (D[b, b] - D[old, old]))


def local_search(inst: QAPInstance, seed: int = 0, starts: int = 50, deadline: float = float("inf")
                 ) -> tuple[np.ndarray, float]:
    """Best-improvement swaps (and moves into free room) with exact deltas, from `starts` random starts."""
    F = inst.flow_II.astype(np.float64)
    D = inst.dist_BB.astype(np.float64)
    rng = np.random.default_rng(seed)
    slots = np.repeat(np.arange(inst.num_bins), inst.capacity_B)
    best, best_obj = None, np.inf
    for _ in range(starts):
        a = slots[rng.permutation(slots.size)[:inst.num_items]].copy()
        obj = qap_objective(inst, a)
        improved = True
        while improved and time.monotonic() < deadline:
            improved = False
            load = np.bincount(a, minlength=inst.num_bins)
            for i in range(inst.num_items):
                for b in np.flatnonzero(load < inst.capacity_B):
                    d = _move_delta(F, D, a, i, int(b))
                    if d < -1e-9:
                        load[a[i]] -= 1
                        load[b] += 1
                        a[i] = b
                        obj += d
                        improved = True
                for j in range(i + 1, inst.num_items):
                    if a[i] == a[j]:
                        continue
                    ai, aj = a[i], a[j]
                    d1 = _move_delta(F, D, a, i, int(aj))
                    a[i] = aj
                    d2 = _move_delta(F, D, a, j, int(ai))
                    if d1 + d2 < -1e-9:
                        a[j] = ai
                        obj += d1 + d2
                        improved = True
                    else:
                        a[i] = ai
        obj = qap_objective(inst, a)
        if obj < best_obj:
            best, best_obj = a.copy(), obj
        if time.monotonic() >= deadline:
            break
    assert best is not None
    return best, best_obj


def _pairs(inst: QAPInstance) -> tuple[np.ndarray, np.ndarray]:
    """Item pairs (i < j) that get product variables: all of them for dense flows when that stays small
    (the capacity family of rows needs them and tightens the LP), else only those with flow."""
    n, B = inst.num_items, inst.num_bins
    iu, ju = np.triu_indices(n, 1)
    keep = (inst.flow_II[iu, ju] != 0) | (inst.flow_II[ju, iu] != 0)
    if iu.size * B * B <= MAX_PRODUCTS and keep.mean() >= 0.5:
        return iu, ju
    return iu[keep], ju[keep]


def _linearization(inst: QAPInstance) -> tuple[np.ndarray, np.ndarray, np.ndarray, object, int]:
    """(cost, integer mask, ub, rows, number of x variables) of the Adams-Johnson (RLT-1) MIP.

    x[i, a] (column i * B + a); y[p, a, b] = x[i, a] x[j, b] for pair p = (i < j). Rows: the assignment
    rows times x (sum_b y[p, a, b] = x[i, a], sum_a y[p, a, b] = x[j, b]) and, with every pair present,
    the capacity rows times x: sum_{i != j} y(i at a, j at b) <= (cap_a - [a = b]) x[j, b].
    """
    n, B = inst.num_items, inst.num_bins
    F, D, cap = inst.flow_II, inst.dist_BB, inst.capacity_B
    iu, ju = _pairs(inst)
    nx, ny = n * B, iu.size * B * B
    cost = np.zeros(nx + ny)
    cost[:nx] = (np.diag(F)[:, None] * np.diag(D)[None, :]).ravel()
    cost[nx:] = (F[iu, ju][:, None, None] * D[None, :, :] + F[ju, iu][:, None, None] * D.T[None, :, :]).ravel()
    ub = np.ones(nx + ny)
    rb = _RowBuilder()
    x = np.arange(nx).reshape(n, B)
    rb.fixed(x, np.ones((n, B)), 1.0, 1.0)
    rb.fixed(x.T.copy(), np.ones((B, n)), -INF, cap.astype(float))
    y = nx + np.arange(ny).reshape(iu.size, B, B)
    ones = np.concatenate([np.ones((B, B)), -np.ones((B, 1))], 1)
    for p in range(iu.size):
        rb.fixed(np.concatenate([y[p], x[iu[p]][:, None]], axis=1), ones, 0.0, 0.0)
        rb.fixed(np.concatenate([y[p].T, x[ju[p]][:, None]], axis=1), ones, 0.0, 0.0)
    single = np.flatnonzero(cap == 1)
    ub[y[:, single, single].ravel()] = 0.0
    if iu.size == n * (n - 1) // 2 and n > 1:
        pid = np.full((n, n), -1)
        pid[iu, ju] = np.arange(iu.size)
        for j in range(n):
            others = np.delete(np.arange(n), j)
            for b in range(B):
                for a in range(B):
                    # y(i at a, j at b) for every i != j
                    cols = np.where(others < j, y[pid[others, j], a, b], y[pid[j, others], b, a])
                    rb.add(np.array([0, n]), np.append(cols, x[j, b]),
                           np.append(np.ones(n - 1), -(cap[a] - (a == b))), -INF, 0.0)
    return cost, np.arange(nx + ny) < nx, ub, rb.build(), nx


def _hint(inst: QAPInstance, bin_I: np.ndarray) -> np.ndarray:
    """The MIP's variables (x, then y over the kept pairs) for an assignment."""
    n, B = inst.num_items, inst.num_bins
    iu, ju = _pairs(inst)
    x = np.zeros((n, B))
    x[np.arange(n), bin_I] = 1.0
    y = np.zeros((iu.size, B, B))
    y[np.arange(iu.size), bin_I[iu], bin_I[ju]] = 1.0
    return np.concatenate([x.ravel(), y.ravel()])


def lp_bound(inst: QAPInstance, *, time_limit_s: float = 1e6) -> tuple[float, bool]:
    """The RLT-1 relaxation's proven bound (safe, from its duals) and whether its LP was solved to optimality;
    the default limit only guards against a hang, so the value is the LP optimum whatever the machine."""
    cost, _, ub, rows, _ = _linearization(inst)
    return _lp_bound(cost, ub, rows, time_limit_s)


def _lp_bound(cost: np.ndarray, ub: np.ndarray, rows, time_limit_s: float) -> tuple[float, bool]:
    lp = linprog.solve(linprog.build(cost, 0.0, ub, np.zeros(cost.size, dtype=bool), rows), "highs",
                       time_limit_s=time_limit_s, lp_barrier=True, duals=True)
    bound = linprog.safe_dual_bound(cost, 0.0, ub, rows, lp.duals) if lp.duals is not None else 0.0
    return bound, lp.optimal


def solve_qap(inst: QAPInstance, *, time_limit_s: float = 60.0, seed: int = 0, solver: str = "scip",
              threads: int = 1, starts: int = 50) -> QAPResult:
    """Local search for a good assignment, the LP relaxation for a proven bound (safe, from its duals),
    then the MIP (hinted with the assignment) for optimality."""
    start = time.monotonic()
    deadline = start + time_limit_s
    best, best_obj = local_search(inst, seed=seed, starts=starts, deadline=start + 0.2 * time_limit_s)
    cost, integer, ub, rows, nx = _linearization(inst)
    bound, _ = _lp_bound(cost, ub, rows, start + 0.5 * time_limit_s - time.monotonic())
    res = linprog.solve(linprog.build(cost, 0.0, ub, integer, rows), solver, time_limit_s=deadline - time.monotonic(),
                        threads=threads, seed=seed, hint=_hint(inst, best))
    method = "local-search"
    if res.values is not None:
        cand = np.argmax(res.values[:nx].reshape(inst.num_items, inst.num_bins), axis=1)
        obj = qap_objective(inst, cand)
        if obj < best_obj - 1e-9 and np.all(np.bincount(cand, minlength=inst.num_bins) <= inst.capacity_B):
            best, best_obj, method = cand, obj, f"mip-{solver}"
    if np.isfinite(res.bound):
        bound = max(bound, res.bound)
    optimal = bool(best_obj <= bound + 1e-6 * max(1.0, abs(best_obj)))
    return QAPResult(best, best_obj, float(min(max(bound, 0.0), best_obj)), optimal, time.monotonic() - start, method)


def as_problem(flow_II: np.ndarray, fabric: Fabric, tier_costs: TierCosts, experts_per_gpu: int = 1,
               name: str = "flows") -> Problem:
    """A placement `Problem` whose traffic is the flow matrix (flow F[i, j] from item i to item j, one
    single-target hyperedge each), on `fabric` with `experts_per_gpu` slots per GPU."""
    from moeplace.placement.presets import load_cluster, load_model

    n = flow_II.shape[0]
    src, dst = np.nonzero(flow_II)
    src, dst = src[src != dst], dst[src != dst]
    model = load_model(None, name=name, num_layers=1, dense_layers=[], num_experts=max(n, 2), top_k=1, hidden=1,
                       expert_hidden=1, num_heads=1, head_dim=1)
    if model.num_items != n:
        raise InputError(f"a flow matrix needs at least 2 items, got {n}", field=name)
    cluster = load_cluster(None, num_nodes=fabric.num_nodes, gpus_per_node=fabric.gpus_per_node,
                           experts_per_gpu=experts_per_gpu)
    traffic = Traffic(src_H=src.astype(np.int32), dst_HK=dst.astype(np.int32)[:, None],
                      bytes_H=flow_II[src, dst].astype(np.float64), kind_H=np.zeros(src.size, dtype=np.int8),
                      kinds=("flow",), num_items=n)
    return Problem(model=model, cluster=cluster, fabric=fabric, flow="flows", dedup=False, tier_costs=tier_costs,
                   traffic=traffic)


def partition_problem(flow_II: np.ndarray, num_parts: int, capacity: int) -> Problem:
    """Capacitated graph partitioning as a `Problem`: parts are nodes of one leaf with one GPU holding
    `capacity` items; the objective is the flow between different parts (the cut, each direction)."""
    leaf = np.zeros(num_parts, dtype=np.int64)
    fabric = Fabric(kind="partition", description=f"{num_parts} parts of {capacity}", gpus_per_node=1,
                    node_tier_NN=tiers_from_positions(leaf, leaf), node_leaf_N=leaf, node_pod_N=leaf.copy(),
                    hosts=default_hosts(num_parts, "part"))
    return as_problem(flow_II, fabric, TierCosts((0.0, 0.0, 1.0, 1.0, 1.0)), experts_per_gpu=capacity,
                      name="partition")
