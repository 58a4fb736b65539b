"""The leaf and pod tiers' bound: how much traffic must leave a leaf (or pod) domain, for layered traffic.

A network crossing from node m to node n costs c_leaf + (c_pod - c_leaf) [n outside m's leaf domain] +
(c_core - c_pod) [n outside m's pod domain], so the objective's part above the leaf tier is, per level,
delta times the count of remote nodes a hyperedge reaches outside its source's domain:

    beyond(h) = sum over targets t outside D(s) of 1 / (targets of h on t's node)
              = (targets outside D(s)) - corr(h),   corr(h) = sum over those t of (1 - 1/k_t).

Summed over hyperedges: beyond = W - sum over domains D of [inside(D) + corr(D)], where W counts every
target once, inside(D) the targets inside their source's domain D and corr(D) the relay savings of the
targets in D of hyperedges sourced elsewhere. So a bound is W minus an upper bound on the most any
partition of the items into domains (of the fabric's sizes) can save.

For layered traffic (every hyperedge goes from a layer to the next, "forward", or inside one layer with one
target, "combine"), what a domain saves depends on its items layer by layer. With A and B its items of
layers l and l + 1 (sizes a, b), the forward saving of transition l is at most

    min(M(A, B) + g(B),  (M - M')(A, B) + In'(B))

(M: per-target bytes from an item of l to one of l + 1; M' the same scaled by 1 - 1/|T|, the most a
target's relay can save; In' its column sums; g_t half the sum of t's node-capacity - 1 largest co-target
bytes, the most relays into t can save on one node), and each max over sets of sizes (a, b) is bounded by
letting every row (or every column) pick its own best partners: U_l(a, b). Combine pairs inside a domain are
bounded the same way, C_l(a). A domain's saving is then at most

    V(x) = sum_l U_l(x_l, x_l+1) + sum_l C_l(x_l)   over its layer profile x (x_l items of layer l),

and the partition's saving at most the Dantzig-Wolfe master over profiles: max sum_k V(x_k) z_k with every
layer's items covered once and one profile per domain. Its Lagrangian value, for any layer prices lambda,

    sum_l lambda_l n_l + sum over domains of max over profiles x that fit of (V(x) - lambda . x),

is a valid upper bound (the inner max is a dynamic programme over layers). It is taken at layer prices 0
(column generation on them was unstable) with item prices on the tables instead: any item prices are valid,
their sum is added back, so a grid of centred prices and a subgradient descent on them only tighten it.
Everything is deterministic: fixed step counts, no clock decides the value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moeplace.placement.problem import Problem
from moeplace.placement.traffic import item_sourced_targets
from moeplace.topologies.base import TIER_CORE, TIER_LEAF, TIER_POD

NEG = -1e30


@dataclass(frozen=True)
class Layered:
    """Layered traffic in per-layer local indices (item `order[offset[l] + i]` is item i of layer l)."""

    sizes: np.ndarray            # int [L]: items per layer
    M: list[np.ndarray]          # per transition l: float [n_l, n_l+1], per-target bytes from l to l + 1
    Mr: list[np.ndarray]         # the same, times 1 - 1/|T| (what a relay can save at most)
    g: list[np.ndarray]          # per transition: float [n_l+1], g_t of layer l + 1's items
    S: list[np.ndarray]          # per layer: float [n_l, n_l], combine bytes (source, target)
    total: float                 # W: every covered target counted once (bytes per token)


@dataclass(frozen=True)
class Tables:
    """The saving bounds under item prices: U_l(a, b), C_l(a), and the prices' sum (added back)."""

    U: list[np.ndarray]
    C: list[np.ndarray]
    price_sum: float


@dataclass(frozen=True)
class Prices:
    """Item prices, one per item and term (any prices give a valid bound: their sum is added back)."""

    alpha: list[np.ndarray]      # per transition l: layer l's items as sources
    beta: list[np.ndarray]       # per transition l: layer l + 1's items as targets
    gamma: list[np.ndarray]      # per layer: its items in combine pairs

    def total(self) -> float:
        return float(sum(x.sum() for x in (*self.alpha, *self.beta, *self.gamma)))


def centred_prices(lay: Layered, kappa: float = 0.0, kappa_cols: float | None = None,
                   kappa_comb: float | None = None) -> Prices:
    """Every item priced at kappa times its bytes in each term minus the layer's mean (pricing busy items
    keeps the relaxation from giving every domain the same busiest items; the prices sum to zero)."""
    kc = kappa if kappa_cols is None else kappa_cols
    kb = kappa if kappa_comb is None else kappa_comb
    alpha, beta, gamma = [], [], []
    for M in lay.M:
        r, c = M.sum(axis=1), M.sum(axis=0)
        alpha.append(kappa * (r - r.mean()))
        beta.append(kc * (c - c.mean()))
    for S in lay.S:
        d = S.sum(axis=0) + S.sum(axis=1)
        gamma.append(kb * 0.5 * (d - d.mean()))
    return Prices(alpha, beta, gamma)


def priced_tables(lay: Layered, prices: Prices) -> Tables:
    U = [np.minimum(pair_bound(M, g, al, be), pair_bound(M - Mr, Mr.sum(axis=0), al, be))
         for M, Mr, g, al, be in zip(lay.M, lay.Mr, lay.g, prices.alpha, prices.beta)]
    C = [combine_bound(S, ga) for S, ga in zip(lay.S, prices.gamma)]
    return Tables(U=U, C=C, price_sum=prices.total())


def tables(lay: Layered, kappa: float = 0.0, kappa_cols: float | None = None,
           kappa_comb: float | None = None) -> Tables:
    """The saving tables under `centred_prices`."""
    return priced_tables(lay, centred_prices(lay, kappa, kappa_cols, kappa_comb))


def _topk_cumsum(x: np.ndarray, axis: int) -> np.ndarray:
    """Cumulative sums of x sorted descending along axis, with a leading 0: [..., k] = sum of the k largest."""
    s = -np.sort(-x, axis=axis)
    c = np.cumsum(s, axis=axis)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (1, 0)
    return np.pad(c, pad)


def pair_bound(N: np.ndarray, c: np.ndarray, alpha: np.ndarray | None = None,
               beta: np.ndarray | None = None) -> np.ndarray:
    """float [n + 1, m + 1]: an upper bound on max over |A| = a, |B| = b of N(A, B) + c(B) - alpha(A) - beta(B)
    (N >= 0; alpha, beta: item prices, 0 by default).

    The smaller of two relaxations: every row of A picks its own b best columns (c - beta split evenly over
    the a rows), or every column of B its own a best rows (alpha split evenly over the b columns)."""
    n, m = N.shape
    alpha = np.zeros(n) if alpha is None else alpha
    cb = c - (np.zeros(m) if beta is None else beta)
    out = np.full((n + 1, m + 1), NEG)
    out[0] = _topk_cumsum(cb, 0)
    out[:, 0] = _topk_cumsum(-alpha, 0)  # b = 0: the a cheapest rows
    if n == 0 or m == 0:
        return out
    a = np.arange(1, n + 1, dtype=np.float64)
    X = N[None, :, :] + cb[None, None, :] / a[:, None, None]          # [a, i, j]
    R = _topk_cumsum(X, 2)[:, :, 1:] - alpha[None, :, None]           # [a, i, b]: row i's top-b
    rows = _topk_cumsum(R, 1)                                         # [a, k, b]: top-k rows
    by_rows = rows[np.arange(n), np.arange(1, n + 1), :]              # k = a: [a, b]
    b = np.arange(1, m + 1, dtype=np.float64)
    Y = N[None, :, :] - alpha[None, :, None] / b[:, None, None]       # [b, i, j]
    Q = _topk_cumsum(Y, 1)[:, 1:, :] + cb[None, None, :]              # [b, a, j]: column j's top-a
    cols = _topk_cumsum(Q, 2)                                         # [b, a, k]
    by_cols = cols[np.arange(m), :, np.arange(1, m + 1)]              # k = b: [b, a]
    out[1:, 1:] = np.minimum(by_rows, by_cols.T)
    return out


def combine_bound(S: np.ndarray, gamma: np.ndarray | None = None) -> np.ndarray:
    """float [n + 1]: an upper bound on max over |A| = a of S(A, A) - gamma(A) (S >= 0, zero diagonal): every
    item picks its a - 1 best partners, in both directions, halved."""
    n = S.shape[0]
    gamma = np.zeros(n) if gamma is None else gamma
    sym = S + S.T
    R = _topk_cumsum(sym, 1)[:, :n] - 2 * gamma[:, None]             # [i, a - 1]
    best = _topk_cumsum(R.T, 1)                                       # [a - 1, k]
    out = np.zeros(n + 1)
    out[1:] = 0.5 * best[np.arange(n), np.arange(1, n + 1)]
    return np.minimum(out, S.sum() - (-_topk_cumsum(-gamma, 0)))


def layered(problem: Problem) -> Layered | None:
    """The layered traffic of the item-sourced hyperedges and its saving bounds, or None when the traffic is
    not layered (replicas, or no hyperedge is forward or combine)."""
    if problem.item_replica_I is not None and np.any(problem.item_replica_I):
        return None
    tr = problem.traffic
    layer_I = problem.item_layer_I.astype(np.int64)
    L = int(layer_I.max()) + 1
    sizes = np.bincount(layer_I, minlength=L)
    local_I = np.zeros(problem.num_items, dtype=np.int64)
    order = np.lexsort((np.arange(problem.num_items), layer_I))
    local_I[order] = np.arange(problem.num_items) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    src, dst, w, valid = item_sourced_targets(tr)
    n_t = valid.sum(axis=1)
    ls = layer_I[src]
    ld = np.where(valid, layer_I[np.maximum(dst, 0)], -1)
    forward = (n_t > 0) & np.all(~valid | (ld == ls[:, None] + 1), axis=1)
    combine = (n_t == 1) & np.all(~valid | (ld == ls[:, None]), axis=1)
    if not (forward.any() or combine.any()):
        return None
    ncap = problem.node_capacity
    relay = 1.0 - 1.0 / np.maximum(n_t, 1)
    total = float((w * n_t)[forward | combine].sum())
    Ms, Mrs, gs, Ss = [], [], [], []
    hf, jf = np.nonzero(valid & forward[:, None])
    gamma = _cotarget_cap(dst, valid & forward[:, None], w, problem.num_items, ncap)
    for lay in range(L - 1):
        n, m = int(sizes[lay]), int(sizes[lay + 1])
        sel = ls[hf] == lay
        h, j = hf[sel], jf[sel]
        i_loc, t_loc = local_I[src[h]], local_I[dst[h, j]]
        M = np.zeros((n, m))
        Mr = np.zeros((n, m))
        np.add.at(M, (i_loc, t_loc), w[h])
        np.add.at(Mr, (i_loc, t_loc), (w * relay)[h])
        items = order[np.cumsum(sizes)[lay]: np.cumsum(sizes)[lay] + m]  # items of layer lay + 1, local order
        g = np.minimum(gamma[items], Mr.sum(axis=0))  # relays into t save at most 1 - 1/|T| of its bytes too
        Ms.append(M)
        Mrs.append(Mr)
        gs.append(g)
    hc = np.flatnonzero(combine)
    jc = np.argmax(valid[hc], axis=1)
    for lay in range(L):
        n = int(sizes[lay])
        sel = ls[hc] == lay
        S = np.zeros((n, n))
        np.add.at(S, (local_I[src[hc[sel]]], local_I[dst[hc[sel], jc[sel]]]), w[hc[sel]])
        Ss.append(S)
    return Layered(sizes=sizes, M=Ms, Mr=Mrs, g=gs, S=Ss, total=total)


def _cotarget_cap(dst: np.ndarray, valid: np.ndarray, w: np.ndarray, num_items: int, ncap: int) -> np.ndarray:
    """float [items]: half the sum of each item's ncap - 1 largest co-target bytes (the most relays into it save
    on one node: 1 - 1/k <= (k - 1) / 2)."""
    K = dst.shape[1]
    a_list, b_list, v_list = [], [], []
    for j1 in range(K):
        for j2 in range(K):
            if j1 == j2:
                continue
            both = valid[:, j1] & valid[:, j2]
            a_list.append(dst[both, j1])
            b_list.append(dst[both, j2])
            v_list.append(w[both])
    if not a_list:
        return np.zeros(num_items)
    a, b, v = (np.concatenate(x) for x in (a_list, b_list, v_list))
    key = a.astype(np.int64) * num_items + b
    uk, inv = np.unique(key, return_inverse=True)
    val = np.bincount(inv, weights=v)
    ua = uk // num_items
    order = np.lexsort((-val, ua))
    ua, val = ua[order], val[order]
    rank = np.arange(ua.size) - np.searchsorted(ua, ua, side="left")
    keep = rank < ncap - 1
    return 0.5 * np.bincount(ua[keep], weights=val[keep], minlength=num_items)


def best_profile(tab: Tables, sizes: np.ndarray, price: np.ndarray, capacity: int) -> tuple[float, np.ndarray]:
    """(max over profiles x with sum x <= capacity of V(x) - price . x, the profile): a DP over layers with
    state (items of the current layer, items used so far); `price` are layer prices (the bound uses 0)."""
    L = sizes.size
    cap = int(capacity)
    # V[x, u]: best value of layers 0..l with x_l = x and u items used
    n0 = int(sizes[0])
    V = np.full((n0 + 1, cap + 1), NEG)
    for x in range(min(n0, cap) + 1):
        V[x, x] = tab.C[0][x] - price[0] * x
    back = []
    for lay_i in range(1, L):
        n = int(sizes[lay_i])
        Ut = tab.U[lay_i - 1]                          # [prev x, x]
        newV = np.full((n + 1, cap + 1), NEG)
        arg = np.zeros((n + 1, cap + 1), dtype=np.int16)
        for x in range(min(n, cap) + 1):
            cand = V[:, : cap + 1 - x] + Ut[:, x][:, None]   # [prev, u - x]
            best = np.argmax(cand, axis=0)
            newV[x, x:] = cand[best, np.arange(cand.shape[1])] + tab.C[lay_i][x] - price[lay_i] * x
            arg[x, x:] = best
        back.append(arg)
        V = newV
    x, u = np.unravel_index(int(np.argmax(V)), V.shape)
    value = float(V[x, u])
    prof = np.zeros(L, dtype=np.int64)
    prof[L - 1] = x
    for lay_i in range(L - 1, 0, -1):
        prev = int(back[lay_i - 1][x, u])
        u -= x
        x = prev
        prof[lay_i - 1] = x
    return value, prof


def profile_value(tab: Tables, prof: np.ndarray) -> float:
    v = sum(tab.C[i][prof[i]] for i in range(prof.size))
    return float(v + sum(tab.U[i][prof[i], prof[i + 1]] for i in range(prof.size - 1)))


@dataclass(frozen=True)
class DomainBudget:
    """The deterministic work of the leaf and pod bound: which item prices to try, and the most DP cells."""

    kappas: tuple[tuple[float, float, float], ...] = ((0.4, 0.6, 0.75),)  # (sources, targets, combine)
    max_cells: float = 6e7    # per level and price: sum over layers of (n_l + 1)(n_l+1 + 1)(capacity + 1)
    refine_steps: int = 0     # subgradient steps on the item prices after the best of `kappas`, per level
    step0: float = 0.1        # first step, in mean bytes per matrix entry (then / sqrt(k + 1))


DEFAULT_DOMAIN_BUDGET = DomainBudget()
STRONG_KAPPAS = tuple((r, c, b) for r in (0.3, 0.4, 0.5) for c in (0.5, 0.6, 0.7) for b in (0.5, 0.75))


def strong_domain_budget(time_limit_s: float) -> DomainBudget:
    """`--strong-bound`'s: the price grid, then 2 subgradient steps per 3 s of the limit for each level
    (deterministic in the limit; about 0.28 s of CPU per step on the seed)."""
    return DomainBudget(kappas=STRONG_KAPPAS, refine_steps=int(time_limit_s * 2 // 3))


def savings_bound(lay: Layered, caps: np.ndarray, priced: list[Tables]) -> float:
    """An upper bound on the most any partition of the items into domains of capacities `caps` saves: the
    Lagrangian at layer prices 0, the best over the item prices' tables (every one is valid)."""
    types, counts = np.unique(np.asarray(caps, dtype=np.int64), return_counts=True)
    zero = np.zeros(lay.sizes.size)
    return float(min(tab.price_sum + sum(int(n) * best_profile(tab, lay.sizes, zero, int(c))[0]
                                         for c, n in zip(types, counts)) for tab in priced))


def dp_cells(sizes: np.ndarray, capacity: int) -> float:
    s = sizes.astype(np.float64) + 1
    return float((s[:-1] * s[1:]).sum() * (capacity + 1))


def domain_terms(problem: Problem, budget: DomainBudget | None = None) -> dict[str, float]:
    """{"level3": bound on the leaf term, "level4": on the pod term} (the names of `combinatorial_terms`): delta
    times the proven floor on the remote nodes reached outside the source's leaf (pod) domain, for the
    levels where the traffic is layered, the fabric's tiers follow its domains and the work fits the budget."""
    budget = budget or DEFAULT_DOMAIN_BUDGET
    fab = problem.fabric
    cost = problem.tier_costs.array
    sizes = np.bincount(problem.item_layer_I.astype(np.int64))
    if sizes.max() ** 3 * sizes.size > budget.max_cells:  # the saving tables' own work
        return {}
    todo = []
    for t, lower, dom in ((TIER_POD, TIER_LEAF, fab.node_leaf_N), (TIER_CORE, TIER_POD, fab.node_pod_N)):
        delta = float(cost[t] - cost[lower])
        caps = np.bincount(dom) * problem.node_capacity
        caps = caps[caps > 0]
        if delta <= 0 or caps.size < 2:
            continue
        if np.any(fab.node_tier_NN[dom[:, None] != dom[None, :]] < t):
            continue  # a pair in different domains below the tier: the cost does not split by domains
        if dp_cells(sizes, int(caps.max())) * np.unique(caps).size > budget.max_cells:
            continue
        todo.append((t, delta, caps))
    lay = layered(problem) if todo else None
    if lay is None:
        return {}
    starts = [centred_prices(lay, *k) for k in budget.kappas]
    priced = [priced_tables(lay, s) for s in starts]
    per_price = [[savings_bound(lay, caps, [tab]) for tab in priced] for _, _, caps in todo]
    saving = [min(values) for values in per_price]
    if budget.refine_steps > 0:  # each level from its best grid prices, on its own
        for k, (_, _, caps) in enumerate(todo):
            start = starts[int(np.argmin(per_price[k]))]
            (refined,), _ = refine_prices(lay, [caps], start, budget.refine_steps, budget.step0)
            saving[k] = min(saving[k], refined)
    out: dict[str, float] = {}
    for (t, delta, _), s in zip(todo, saving):
        floor = lay.total - s
        if floor > 0:
            out[f"level{t}"] = delta * floor
    return out


def _pair_usage(N: np.ndarray, c: np.ndarray, alpha: np.ndarray, beta: np.ndarray, a: int, b: int
                ) -> tuple[float, np.ndarray, np.ndarray]:
    """(pair_bound's value at (a, b), how much each row's and each column's price it subtracts): the
    subgradient of that value in the prices, from the relaxation that gives it."""
    n, m = N.shape
    ua, ub = np.zeros(n), np.zeros(m)
    cb = c - beta
    if a == 0:
        top = np.argsort(-cb, kind="stable")[:b]
        ub[top] = 1.0
        return float(cb[top].sum()), ua, ub
    if b == 0:
        low = np.argsort(alpha, kind="stable")[:a]
        ua[low] = 1.0
        return float(-alpha[low].sum()), ua, ub
    X = N + cb[None, :] / a
    J = np.argsort(-X, axis=1, kind="stable")[:, :b]
    row_val = np.take_along_axis(X, J, axis=1).sum(axis=1) - alpha
    rows = np.argsort(-row_val, kind="stable")[:a]
    by_rows = float(row_val[rows].sum())
    Y = N - alpha[:, None] / b
    I = np.argsort(-Y, axis=0, kind="stable")[:a, :]
    col_val = np.take_along_axis(Y, I, axis=0).sum(axis=0) + cb
    cols = np.argsort(-col_val, kind="stable")[:b]
    by_cols = float(col_val[cols].sum())
    if by_rows <= by_cols:
        ua[rows] = 1.0
        np.add.at(ub, J[rows].ravel(), 1.0 / a)
        return by_rows, ua, ub
    ub[cols] = 1.0
    np.add.at(ua, I[:, cols].ravel(), 1.0 / b)
    return by_cols, ua, ub


def _combine_usage(S: np.ndarray, gamma: np.ndarray, a: int) -> np.ndarray:
    n = S.shape[0]
    u = np.zeros(n)
    if a == 0:
        return u
    sym = S + S.T
    part = -np.sort(-sym, axis=1)[:, : a - 1].sum(axis=1) - 2 * gamma
    sel = np.argsort(-part, kind="stable")[:a]
    first = 0.5 * part[sel].sum()
    low = np.argsort(gamma, kind="stable")[:a]
    if first <= S.sum() - gamma[low].sum():
        u[sel] = 1.0
    else:
        u[low] = 1.0
    return u


def refine_prices(lay: Layered, caps_by_level: list[np.ndarray], start: Prices, steps: int,
                  step0: float = 0.05) -> tuple[list[float], Prices]:
    """Subgradient descent on the item prices from `start`, for the sum of the levels' bounds: (the best
    saving bound of each level seen, the last prices). Deterministic: a fixed number of steps."""
    L = lay.sizes.size
    zero = np.zeros(L)
    kinds = [np.unique(np.asarray(c, dtype=np.int64), return_counts=True) for c in caps_by_level]
    best = [np.inf] * len(kinds)
    prices = start
    scale = float(np.mean([M.sum() / max(1, M.size) for M in lay.M])) if lay.M else 1.0
    for k in range(steps + 1):
        tab = priced_tables(lay, prices)
        ga = [np.ones_like(x) for x in prices.alpha]
        gb = [np.ones_like(x) for x in prices.beta]
        gc = [np.ones_like(x) for x in prices.gamma]
        for lv, (types, counts) in enumerate(kinds):
            value = tab.price_sum
            for cap, cnt in zip(types, counts):
                v, prof = best_profile(tab, lay.sizes, zero, int(cap))
                value += int(cnt) * v
                for lay_i in range(L - 1):
                    a, b = int(prof[lay_i]), int(prof[lay_i + 1])
                    M, Mr, g = lay.M[lay_i], lay.Mr[lay_i], lay.g[lay_i]
                    al, be = prices.alpha[lay_i], prices.beta[lay_i]
                    v1, ua1, ub1 = _pair_usage(M, g, al, be, a, b)
                    v2, ua2, ub2 = _pair_usage(M - Mr, Mr.sum(axis=0), al, be, a, b)
                    ua, ub = (ua1, ub1) if v1 <= v2 else (ua2, ub2)
                    ga[lay_i] -= cnt * ua / len(kinds)
                    gb[lay_i] -= cnt * ub / len(kinds)
                for lay_i in range(L):
                    gc[lay_i] -= cnt * _combine_usage(lay.S[lay_i], prices.gamma[lay_i], int(prof[lay_i])) / len(kinds)
            best[lv] = min(best[lv], value)
        if k == steps:
            break
        step = step0 * scale / np.sqrt(k + 1)
        prices = Prices([p - step * d for p, d in zip(prices.alpha, ga)],
                        [p - step * d for p, d in zip(prices.beta, gb)],
                        [p - step * d for p, d in zip(prices.gamma, gc)])
    return best, prices
