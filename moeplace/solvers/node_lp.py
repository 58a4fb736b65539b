"""The node-tier matching LP: a lower bound on how many remote nodes the hyperedges must reach, for any plan.

With node-level dedup a hyperedge h (source s, distinct targets T, bytes w) reaches

    G_node(h) = sum over t in T, t outside node(s), of 1 / |T inside node(t)|

remote nodes (each remote node is counted once, split evenly over the targets it holds). Since
1/k >= 1 - (k - 1)/2 for k >= 1, every target t carries at least

    w * (1 - [s in node(t)] - 1/2 * #{t' in T - t : t' in node(t)}),

so with y[a, f] = [a and f share a node], anchor a's charge over the hyperedges it is a target of is at least
W_a - sum_f beta[a, f] y[a, f], where W_a is their bytes and beta[a, f] the bytes of those with source f plus
half the bytes of those with co-target f. The charge is also at least 0. Any plan's y is symmetric, every
item has at most (node capacity - 1) partners, and sharing a node is transitive. Relaxing y to [0, 1]:

    min  sum_a (W_a - s_a - c_a)
    s.t. s_a <= sum over sources f of beta[a, f] y[a, f]               (savings from a source in a's node)
         c_a <= sum over co-targets f of beta[a, f] y[a, f]            (savings from co-targets in a's node)
         s_a + c_a <= W_a,  0 <= c_a <= sum_h w_h (1 - 1/|T_h|)         (the charge's floor; with the source
                                                                        away, co-targets save at most 1 - 1/|T|)
         sum_f y[a, f] <= capacity - 1                                 (degree: a node holds capacity items)
         y[a, b] + y[b, c] - y[a, c] <= 1                              (triangles, separated in rounds)

is a lower bound on sum_h w_h G_node(h) over item-sourced hyperedges. The triangle rows are what break long
chains of affinity (a star or a matching lets every expert keep its predecessor and its successor; a node of
capacity 8 cannot hold a chain of 58). Pairs without traffic enter only through separated triangles.

Every round's LP is turned into a proven value from its duals (`linprog.safe_dual_bound`), so the bound is
valid whatever the LP solver's tolerances and at every round. The work budget is deterministic: a number of
rounds and a simplex iteration limit per round (no clock decides the value).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from moeplace.placement.problem import Problem
from moeplace.placement.traffic import item_sourced_targets
from moeplace.solvers import linprog
from moeplace.solvers.domain_bound import DomainBudget
from moeplace.solvers.pairlp import Rows

MAX_NEW_TRIANGLES = 40_000  # per round, most violated first
EPS = 1e-6


@dataclass(frozen=True)
class NodeLP:
    """The matching LP's data: item-sourced target charges as pair savings."""

    num_items: int
    capacity: int
    total_W: float           # sum of W_a: every target charged in full
    W_I: np.ndarray          # float [items]: bytes of the hyperedges each item is a (non-source) target of
    pair_ab: np.ndarray      # int [pairs, 2]: a < b, the pairs with a saving
    sav_a: np.ndarray        # int [entries]: anchor of a saving entry
    sav_pair: np.ndarray     # int [entries]: its pair
    sav_beta: np.ndarray     # float [entries]: beta[anchor, partner]
    sav_co: np.ndarray       # bool [entries]: a co-target saving (else the source's)
    co_cap_I: np.ndarray     # float [items]: sum over its hyperedges of w (1 - 1/|T|), the most co-targets save
    max_share: int = 2       # the most targets of one hyperedge a node can hold: secant rows m = 2 .. this - 1


def build_node_lp(problem: Problem) -> NodeLP:
    tr = problem.traffic
    I = problem.num_items
    src, dst, w, valid = item_sourced_targets(tr)  # distinct targets other than the source
    K = dst.shape[1]
    h, j = np.nonzero(valid)
    t = dst[h, j]
    W = np.bincount(t, weights=w[h], minlength=I)
    n_t = valid.sum(axis=1)
    co_cap = np.bincount(t, weights=(w * (1.0 - 1.0 / np.maximum(n_t, 1)))[h], minlength=I)
    anchors, partners, values, kinds = [t], [src[h]], [w[h]], [np.zeros(h.size, dtype=np.int64)]
    for j2 in range(K):
        other = valid[h, j2] & (j2 != j)
        anchors.append(t[other])
        partners.append(dst[h[other], j2])
        values.append(w[h[other]] / 2)
        kinds.append(np.ones(int(other.sum()), dtype=np.int64))
    A, P, V, C = (np.concatenate(x) for x in (anchors, partners, values, kinds))
    key = (A.astype(np.int64) * I + P) * 2 + C
    uk, inv = np.unique(key, return_inverse=True)
    beta = np.bincount(inv, weights=V)
    co = (uk % 2).astype(bool)
    uk = uk // 2
    a, f = uk // I, uk % I
    pk = np.minimum(a, f) * I + np.maximum(a, f)
    upairs, pinv = np.unique(pk, return_inverse=True)
    return NodeLP(num_items=I, capacity=problem.node_capacity, total_W=float(W.sum()), W_I=W,
                  pair_ab=np.stack([upairs // I, upairs % I], axis=1), sav_a=a, sav_pair=pinv, sav_beta=beta,
                  sav_co=co, co_cap_I=co_cap, max_share=int(min(n_t.max(initial=1), problem.node_capacity)))


def _rows(m: NodeLP, pairs: np.ndarray, tri: np.ndarray) -> Rows:
    """Rows of the LP over variables [y for `pairs` (P), s_src (items), s_co (items)]; tri: int [T, 3] pair ids
    (ab, bc, ac). Rows: source savings (I), co-target savings (I), their sum <= W (I), degree (I), triangles,
    then the secant rows of `_secant_rows` (hyperedges of three or more targets)."""
    I, P = m.num_items, pairs.shape[0]
    it = np.arange(I)
    r_sav = np.concatenate([it, I + it, m.sav_a + I * m.sav_co])
    c_sav = np.concatenate([P + it, P + I + it, m.sav_pair])
    v_sav = np.concatenate([np.ones(2 * I), -m.sav_beta])
    r_sum = 2 * I + np.concatenate([it, it])
    c_sum = P + np.concatenate([it, I + it])
    r_deg = 3 * I + pairs.T.ravel()
    c_deg = np.tile(np.arange(P), 2)
    T = tri.shape[0]
    r_tri = 4 * I + np.repeat(np.arange(T), 3)
    v_tri = np.tile([1.0, 1.0, -1.0], T)
    sec = _secant_rows(m, P, 4 * I + T)
    return Rows(row=np.concatenate([r_sav, r_sum, r_deg, r_tri, sec.row]),
                col=np.concatenate([c_sav, c_sum, c_deg, tri.ravel(), sec.col]),
                val=np.concatenate([v_sav, np.ones(2 * I), np.ones(2 * P), v_tri, sec.val]),
                lo=np.full(4 * I + T + sec.num_rows, -np.inf),
                hi=np.concatenate([np.zeros(2 * I), m.W_I, np.full(I, m.capacity - 1.0), np.ones(T), sec.hi]))


def _secant_rows(m: NodeLP, P: int, first: int) -> Rows:
    """Anchor a's charge is at least each secant of 1/k: with k = 1 + its co-targets on its node, and 0 when
    its source shares that node, every integer k >= 1 has 1/k >= (2m + 1 - k) / (m (m + 1)), so summed over
    a's hyperedges

        W_a - s_a - c_a >= (2m W_a - B_co(y)) / (m (m + 1)) - 2 B_src(y) / (m + 1)

    (B_co: full co-target bytes times y, twice the halved beta of the co entries; B_src: the source entries).
    Row m = 1 is the co-target row itself; m = 2 .. max_share - 1 tighten hyperedges of 3 or more targets."""
    I = m.num_items
    it = np.arange(I)
    rows, cols, vals, his = [], [], [], []
    for k, mm in enumerate(range(2, m.max_share)):
        base = first + k * I
        coef = np.where(m.sav_co, -2.0 * m.sav_beta / (mm * (mm + 1)), -2.0 * m.sav_beta / (mm + 1))
        rows += [base + it, base + it, base + m.sav_a]
        cols += [P + it, P + I + it, m.sav_pair]
        vals += [np.ones(I), np.ones(I), coef]
        his.append(m.W_I * (mm - 1) / (mm + 1))
    if not rows:
        empty = np.zeros(0)
        return Rows(row=empty.astype(np.int64), col=empty.astype(np.int64), val=empty, lo=empty, hi=empty)
    hi = np.concatenate(his)
    return Rows(row=np.concatenate(rows), col=np.concatenate(cols), val=np.concatenate(vals),
                lo=np.full(hi.size, -np.inf), hi=hi)


def _violated(pairs: np.ndarray, y: np.ndarray, I: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(new pairs [n, 2], triangles [T, 3] as (a, b, c) items with y_ab + y_bc - y_ac > 1), most violated first."""
    on = y > EPS
    a, b, v = pairs[on, 0], pairs[on, 1], y[on]
    # directed adjacency: centre -> (neighbour, y)
    ctr = np.concatenate([a, b])
    nb = np.concatenate([b, a])
    yy = np.concatenate([v, v])
    order = np.lexsort((nb, ctr))
    ctr, nb, yy = ctr[order], nb[order], yy[order]
    start = np.searchsorted(ctr, np.arange(I))
    deg = np.bincount(ctr, minlength=I)
    # all neighbour pairs (x < z) around each centre whose two sides sum above 1: one side is above 1/2, so
    # pair each such side h with the centre's other sides o (a pair of two such sides once), in (i, j) order
    heavy = yy > 0.5
    h_all = np.flatnonzero(heavy)
    reps = deg[ctr[h_all]]
    h = np.repeat(h_all, reps)
    o = start[ctr[h]] + (np.arange(h.size) - np.repeat(np.cumsum(reps) - reps, reps))
    keep = (h != o) & (~heavy[o] | (nb[h] < nb[o])) & (yy[h] + yy[o] > 1 + EPS)
    h, o = h[keep], o[keep]
    first = nb[h] < nb[o]
    i_idx, j_idx = np.where(first, h, o), np.where(first, o, h)
    order = np.lexsort((j_idx, i_idx))
    i_idx, j_idx = i_idx[order], j_idx[order]
    x, c, z = nb[i_idx], ctr[i_idx], nb[j_idx]
    pk_all = pairs[:, 0].astype(np.int64) * I + pairs[:, 1]
    xz = x.astype(np.int64) * I + z
    pos = np.searchsorted(pk_all, xz)
    found = (pos < pk_all.size) & (pk_all[np.minimum(pos, pk_all.size - 1)] == xz)
    y_xz = np.where(found, y[np.minimum(pos, y.size - 1)], 0.0)
    viol = yy[i_idx] + yy[j_idx] - y_xz - 1
    sel = viol > EPS
    x, c, z, viol = x[sel], c[sel], z[sel], viol[sel]
    top = np.argsort(-viol, kind="stable")[:limit]
    x, c, z = x[top], c[top], z[top]
    new = np.unique(xz[sel][top][~found[sel][top]])
    return np.stack([new // I, new % I], axis=1), np.stack([x, c, z], axis=1)


def _pair_ids(pairs: np.ndarray, ab: np.ndarray, I: int) -> np.ndarray:
    pk = pairs[:, 0].astype(np.int64) * I + pairs[:, 1]
    lo, hi = np.minimum(ab[:, 0], ab[:, 1]), np.maximum(ab[:, 0], ab[:, 1])
    return np.searchsorted(pk, lo.astype(np.int64) * I + hi)


def node_lp_bound(problem: Problem, rounds: int = 1, iteration_limit: int | None = None,
                  time_limit_s: float = 600.0, per_round: int = MAX_NEW_TRIANGLES,
                  barrier: bool = False, ipm_tolerances: tuple[float, ...] = (),
                  solution: dict | None = None, secants: bool = False) -> tuple[float, int, bool]:
    """(proven lower bound on the item-sourced node-tier count sum_h w_h G_node(h), rounds run, converged);
    `solution`, when given, receives the last round's fractional co-location: "pairs" [P, 2], "y" [P]."""
    m = build_node_lp(problem)
    if not secants:
        m = dataclasses.replace(m, max_share=2)
    I = m.num_items
    if m.total_W <= 0:
        return 0.0, 0, True
    deadline = time.monotonic() + time_limit_s
    pairs = m.pair_ab
    tri_items = np.zeros((0, 3), dtype=np.int64)
    best, done = 0.0, 0
    for rnd in range(max(1, rounds)):
        P = pairs.shape[0]
        tri = np.stack([_pair_ids(pairs, tri_items[:, [0, 1]], I), _pair_ids(pairs, tri_items[:, [1, 2]], I),
                        _pair_ids(pairs, tri_items[:, [0, 2]], I)], axis=1) if tri_items.size else \
            np.zeros((0, 3), dtype=np.int64)
        rows = _rows(m, pairs, tri)
        cost = np.concatenate([np.zeros(P), -np.ones(2 * I)])
        ub = np.concatenate([np.ones(P), m.W_I, m.co_cap_I])
        lp = linprog.build(cost, m.total_W, ub, np.zeros(P + 2 * I, dtype=bool), rows)
        res = None
        loose = _tolerance(ipm_tolerances, rnd)
        for options in ([loose, None] if loose else [None]):  # a loose tolerance may end Unknown: then HiGHS's
            try:
                res = linprog.solve(lp, "highs", time_limit_s=max(0.01, deadline - time.monotonic()), duals=True,
                                    iteration_limit=iteration_limit, lp_barrier=barrier, highs_options=options)
                break
            except Exception:  # noqa: BLE001 (HiGHS raises StatusNotOk)
                continue
        if res is None:
            break  # a solver failure costs this round, never the plan: the best proven value stands
        done = rnd + 1
        if res.duals is None:
            break
        best = max(best, linprog.safe_dual_bound(cost, m.total_W, ub, rows, res.duals))
        if solution is not None and res.values is not None:
            solution.update(pairs=pairs, y=np.clip(res.values[:P], 0.0, 1.0))
        if res.values is None or rnd + 1 >= rounds or time.monotonic() >= deadline:
            break
        new_pairs, new_tri = _violated(pairs, res.values[:P], I, per_round)
        if not new_tri.size:
            return best, done, True
        if new_pairs.size:
            merged = np.unique(np.concatenate([pairs[:, 0].astype(np.int64) * I + pairs[:, 1],
                                               new_pairs[:, 0].astype(np.int64) * I + new_pairs[:, 1]]))
            old_ids = _pair_ids(np.stack([merged // I, merged % I], axis=1), pairs, I)
            pairs = np.stack([merged // I, merged % I], axis=1)
            m = _remap(m, old_ids)
        tri_items = np.unique(np.concatenate([tri_items, new_tri]), axis=0)
    return best, done, False


def _tolerance(tolerances: tuple[float, ...], rnd: int) -> dict | None:
    """HiGHS's interior-point optimality tolerance for round `rnd` (the last one repeats; none: its default)."""
    if not tolerances:
        return None
    return {"ipm_optimality_tolerance": float(tolerances[min(rnd, len(tolerances) - 1)])}


def _remap(m: NodeLP, old_to_new: np.ndarray) -> NodeLP:
    return NodeLP(num_items=m.num_items, capacity=m.capacity, total_W=m.total_W, W_I=m.W_I, pair_ab=m.pair_ab,
                  sav_a=m.sav_a, sav_pair=old_to_new[m.sav_pair], sav_beta=m.sav_beta, sav_co=m.sav_co,
                  co_cap_I=m.co_cap_I, max_share=m.max_share)


@dataclass(frozen=True)
class NodeBudget:
    """The deterministic work of the node-tier bound: LP rounds and simplex iterations per round."""

    rounds: int = 2
    iteration_limit: int = 400_000
    per_round: int = 2_000
    time_limit_s: float = 600.0  # a safety net only: rounds and iterations decide the value
    barrier: bool = True         # an interior point exposes more violated triangles than a simplex vertex
    ipm_tolerances: tuple[float, ...] = ()  # per round (the last repeats); () = HiGHS's default 1e-8
    secants: bool = False    # the secant rows of hyperedges of 3+ targets (FLAME-MoE top-6: +2%, 4x the CPU)


# Round 1 only finds triangles (1e-5 finds the same ones as 1e-8 on the seed, 40% less CPU); the last round's
# duals give the value, and any duals give a valid one (`safe_dual_bound`), so a looser tolerance costs little
DEFAULT_BUDGET = NodeBudget(time_limit_s=120.0, ipm_tolerances=(1e-5, 1e-6))

LARGE_ITEMS = 4096  # above this the default skips the LP (2 rounds took 515 s CPU at 14,848 items)


def default_budget(problem: Problem) -> NodeBudget | None:
    """The budget of every solve's bound: 2 rounds, none past LARGE_ITEMS items (deterministic in the problem;
    `--strong-bound` runs it at any size)."""
    return DEFAULT_BUDGET if problem.num_items <= LARGE_ITEMS else None


def node_tier_bound(problem: Problem, budget: NodeBudget | None = None,
                    domain: DomainBudget | None = None) -> tuple[float, str, dict]:
    """(bound on the whole objective, method, details): the combinatorial bound with its node term replaced
    by the matching LP's and its leaf and pod terms by the domain-profile bound's (`domain_bound`) where those
    are stronger (the objective is base + (c_leaf - c_nvlink) x the node count + the leaf/pod terms + home,
    and every term is bounded on its own)."""
    from moeplace.solvers.bounds import combinatorial_terms
    from moeplace.solvers.domain_bound import domain_terms
    from moeplace.topologies.base import TIER_LEAF, TIER_NVLINK

    budget = budget or default_budget(problem)
    terms = combinatorial_terms(problem)
    comb = float(sum(terms.values()))
    details: dict = {"combinatorial": comb}
    parts = []
    cost = problem.tier_costs.array
    delta = float(cost[TIER_LEAF] - cost[TIER_NVLINK])
    if budget is not None and delta > 0 and problem.node_capacity > 1:
        began = time.monotonic()
        count, rounds, converged = node_lp_bound(problem, budget.rounds, budget.iteration_limit,
                                                 budget.time_limit_s, budget.per_round, budget.barrier,
                                                 budget.ipm_tolerances, secants=budget.secants)
        clock = not converged and rounds < budget.rounds and time.monotonic() - began >= budget.time_limit_s
        details.update(node_lp_rounds=rounds, node_lp_converged=converged, clock=clock)
        if delta * count > terms["node"]:
            terms["node"] = delta * count
            parts.append(f"node-matching-lp ({rounds} round{'s' if rounds != 1 else ''})")
    levels = []
    for name, value in domain_terms(problem, domain).items():
        details[f"domain_{name}"] = value
        if value > terms.get(name, 0.0):
            terms[name] = value
            levels.append({"level3": "leaf", "level4": "pod"}[name])
    if levels:
        parts.append(f"{'/'.join(levels)} domain profiles")
    if not parts:
        return comb, "combinatorial", details
    return float(sum(terms.values())), " + ".join(parts), details
