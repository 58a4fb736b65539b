"""Lower bounds on the objective that hold for every feasible plan.

Combinatorial capacity bound. Every hyperedge h (source s, targets T, bytes w) costs at least

    w * (base_h + sum over levels l of delta_l * [some target lies outside the source's level-l domain])

where the levels are GPU (when a GPU holds several experts), node, leaf and pod, delta_l is the rise in tier
cost from inside the domain to just outside it (tier costs never fall up the ladder), and base_h the cheapest
way to reach |T| distinct targets (NVLink each, when every item has its own GPU). The indicator is bounded
per source item a: a domain holds at most cap_l - 1 other items M, and

    sum_h w_h [T_h inside M] <= sum_{f in M} alpha_af,   alpha_af = sum_{h at a, f in T_h} w_h / |T_h|,

so the weight that must leave the domain is at least W_a minus the cap_l - 1 largest alpha_af. Edges sourced
at HOME (uniform attention GPU) are anchored at their first target and use the mean tier cost from home.
"""

from __future__ import annotations

import numpy as np

from moeplace.placement.cost import home_tier_dist
from moeplace.placement.problem import Problem
from moeplace.placement.traffic import HOME, PAD
from moeplace.topologies.base import TIER_LEAF, TIER_NVLINK, TIER_POD


def _top_m_sums(anchor: np.ndarray, f: np.ndarray, value: np.ndarray, num_items: int,
                ms: list[int]) -> list[np.ndarray]:
    """For each m in ms: per anchor, the sum of its m largest aggregated values alpha[anchor, f]."""
    key = anchor.astype(np.int64) * num_items + f
    uniq, inv = np.unique(key, return_inverse=True)
    alpha = np.bincount(inv.ravel(), weights=value, minlength=uniq.size)
    a = uniq // num_items
    order = np.lexsort((-alpha, a))
    a, alpha = a[order], alpha[order]
    start = np.searchsorted(a, a, side="left")
    rank = np.arange(a.size) - start
    return [np.bincount(a[rank < m], weights=alpha[rank < m], minlength=num_items) for m in ms]


def combinatorial_bound(problem: Problem) -> float:
    return float(sum(combinatorial_terms(problem).values()))


def combinatorial_terms(problem: Problem) -> dict[str, float]:
    """The combinatorial bound by term: "base", "gpu", "node" (item-sourced edges leaving the source's node,
    times c_leaf - c_nvlink), "level<k>" for the leaf and pod domains, "home"; each bounds its own part of the
    objective, so a stronger bound of one term can replace it."""
    tr = problem.traffic
    cost = problem.tier_costs.array
    c_nv = cost[TIER_NVLINK]
    epg = problem.experts_per_gpu
    ncap = problem.node_capacity
    valid = tr.dst_HK != PAD
    n_t = valid.sum(axis=1)
    w = tr.bytes_H
    is_home = tr.src_H == HOME
    home_avg = home_tier_dist(problem) @ cost
    min_home = float(home_avg.min())

    # Anchor and "other members" of every hyperedge.
    anchor = np.where(is_home, tr.dst_HK[:, 0], tr.src_H)
    others = np.where(is_home[:, None], np.where(np.arange(tr.dst_HK.shape[1])[None, :] == 0, PAD, tr.dst_HK),
                      tr.dst_HK)
    others = np.where(others == anchor[:, None], PAD, others)
    other_valid = others != PAD
    n_other = other_valid.sum(axis=1)

    one_per_gpu = epg == 1
    base = np.where(is_home, min_home + (c_nv * np.maximum(n_t - 1, 0) if one_per_gpu else 0.0),
                    c_nv * n_t if one_per_gpu else 0.0)
    terms = {"base": float((w * base).sum())}

    # Levels: (capacity in items of the anchor's domain, cost rise outside it, applies to home edges?).
    levels: list[tuple[int, float, str]] = []
    if not one_per_gpu:
        levels.append((epg, c_nv, "gpu"))
    levels.append((ncap, cost[TIER_LEAF] - c_nv, "node"))
    for tier, cap_nodes in problem.fabric.level_capacities()[1:]:
        lower = TIER_LEAF if tier == TIER_POD else TIER_POD
        levels.append((cap_nodes * ncap, cost[tier] - cost[lower], f"level{tier}"))
    home_delta = (min_home - c_nv) if one_per_gpu else min_home

    rows = np.repeat(np.arange(tr.num_edges), others.shape[1])
    flat = others.ravel()
    keep = flat != PAD
    rows, flat = rows[keep], flat[keep]
    share = (w / np.maximum(n_other, 1))[rows]
    has_other = n_other > 0

    def excess(mask_edges: np.ndarray, caps: list[int]) -> list[float]:
        sel = mask_edges[rows]
        W_a = np.bincount(anchor[mask_edges & has_other], weights=w[mask_edges & has_other],
                          minlength=problem.num_items)
        tops = _top_m_sums(anchor[rows[sel]], flat[sel], share[sel], problem.num_items, [c - 1 for c in caps])
        return [float(np.maximum(W_a - top, 0.0).sum()) for top in tops]

    item_edges = ~is_home
    for _, _, name in levels:
        terms[name] = 0.0
    terms["home"] = 0.0
    if item_edges.any():
        ex = excess(item_edges, [cap for cap, _, _ in levels])
        for (_, delta, name), e in zip(levels, ex):
            if delta > 0:
                terms[name] += delta * e
    if is_home.any() and home_delta > 0:
        (ex_home,) = excess(is_home, [ncap])
        terms["home"] = home_delta * ex_home
    return terms
