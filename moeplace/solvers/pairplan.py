"""Between plans and pair-model solutions: encode a plan (for hints and checks), decode a solution.

A solution is the vector of every model variable in the order of `moeplace.solvers.pairlp.Layout`: pair
variables level by level, then z[i, D] item-major, then the g terms.
"""

from __future__ import annotations

import numpy as np

from moeplace.solvers.pairmodel import PairModel


def fill_slots(model: PairModel, item_gpu_I: np.ndarray, epg: int, num_gpus: int) -> np.ndarray:
    """GPU of every model item: the plan's items, then dummies in the free slots in GPU order."""
    free = epg - np.bincount(item_gpu_I, minlength=num_gpus)
    dummies = np.repeat(np.arange(num_gpus), free)
    out = np.concatenate([np.asarray(item_gpu_I, dtype=np.int64), dummies])
    assert out.size == model.num_items
    return out


def canonical(model: PairModel, slot_gpu: np.ndarray) -> np.ndarray:
    """Relabel interchangeable z domains so that their smallest items are in order (the symmetry breaking)."""
    if not model.z_sym:
        return slot_gpu
    dom_G = model.levels[model.z_level].domain_G
    nxt = dict(model.z_sym)
    heads = set(nxt) - set(nxt.values())
    out = slot_gpu.copy()
    for head in sorted(heads):
        chain = [head]
        while chain[-1] in nxt:
            chain.append(nxt[chain[-1]])
        gpus = [np.flatnonzero(dom_G == D) for D in chain]
        dom_item = dom_G[slot_gpu]
        first = [int(np.flatnonzero(dom_item == D)[0]) for D in chain]
        order = np.argsort(first, kind="stable")
        remap = np.arange(dom_G.size)
        for rank, k in enumerate(order):
            remap[gpus[k]] = gpus[rank]
        moved = np.isin(dom_item, chain)
        out[moved] = remap[slot_gpu[moved]]
    return out


def encode(model: PairModel, slot_gpu: np.ndarray) -> np.ndarray:
    """Every variable's value for a full slot assignment (int [num_items] GPU per model item)."""
    n = model.num_items
    iu, ju = np.triu_indices(n, 1)
    parts = [(lv.domain_G[slot_gpu[iu]] == lv.domain_G[slot_gpu[ju]]).astype(np.float64) for lv in model.levels]
    x = np.concatenate(parts) if parts else np.zeros(0)
    z = np.zeros((n, model.num_z_domains))
    if model.num_z_domains:
        z[np.arange(n), model.levels[model.z_level].domain_G[slot_gpu]] = 1.0
    g = g_values(model, x, z)
    return np.concatenate([x, z.ravel(), g])


def g_values(model: PairModel, x: np.ndarray, z_ID: np.ndarray) -> np.ndarray:
    """The g terms implied by integral pair and z values (int 0/1 each)."""
    P = model.num_pairs
    refv = x[model.ref_l * P + model.pair_index(model.ref_i, model.ref_j)]
    Q = model.g_coef.size
    seg = np.repeat(np.arange(Q), np.diff(model.g_ptr))
    base = np.ones(Q)
    has_z = model.g_zitem >= 0
    base[has_z] = z_ID[model.g_zitem[has_z], model.g_zdom[has_z]]
    total = np.bincount(seg, weights=refv, minlength=Q)
    return np.where(total > 0.5, 0.0, base)


def model_value(model: PairModel, values: np.ndarray) -> float:
    """The model objective at a variable vector."""
    P = model.num_pairs
    L = len(model.levels)
    x = values[:L * P]
    z = values[L * P:L * P + model.num_items * model.num_z_domains].reshape(model.num_items, -1)
    g = values[L * P + z.size:]
    val = model.const + float(model.lin_c @ x[model.lin_l * P + model.pair_index(model.lin_i, model.lin_j)])
    if model.z_c.size:
        val += float(model.z_c @ z[model.z_item, model.z_dom])
    return val + float(model.g_coef @ g)


def _components(n: int, iu: np.ndarray, ju: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Label of each item's group (smallest member) under the pairs switched on."""
    label = np.arange(n)
    for i, j in zip(iu[on].tolist(), ju[on].tolist()):
        a, b = label[i], label[j]
        if a != b:
            label[label == max(a, b)] = min(a, b)
    return label


def decode(model: PairModel, values: np.ndarray, gpus_per_node: int) -> np.ndarray:
    """GPU of every real item from an integral solution; ValueError if it is not a nested partition."""
    n = model.num_items
    P = model.num_pairs
    iu, ju = np.triu_indices(n, 1)
    levels = model.levels
    top = model.z_level if model.z_level < len(levels) else len(levels) - 1
    labels = [_components(n, iu, ju, values[k * P:(k + 1) * P] > 0.5) for k in range(min(top + 1, model.z_level))]
    if model.z_level < len(levels):
        z = values[len(levels) * P:len(levels) * P + n * model.num_z_domains].reshape(n, -1)
        dom = np.argmax(z, axis=1)
        if not np.array_equal(np.bincount(dom, minlength=z.shape[1]), model.z_size_D):
            raise ValueError("z assignment does not fill its domains exactly")
    else:
        dom = _assign(labels[top], np.arange(levels[top].num_domains), np.bincount(levels[top].domain_G),
                      levels[top].num_domains)
    for k in range(top - 1, -1, -1):
        child = np.full(n, -1)
        upper, lower = levels[k + 1].domain_G, levels[k].domain_G
        for d in range(levels[k + 1].num_domains):
            members = np.flatnonzero(dom == d)
            kids = np.unique(lower[upper == d])
            child[members] = _assign(labels[k][members], kids, np.bincount(lower, minlength=lower.max() + 1)[kids],
                                     kids.size)
        dom = child
    if levels[0].name == "gpu":
        gpu = dom
    else:
        gpu = np.empty(n, dtype=np.int64)
        for node in np.unique(dom):
            members = np.flatnonzero(dom == node)
            if members.size > gpus_per_node:
                raise ValueError(f"node {node} gets {members.size} items")
            gpu[members] = node * gpus_per_node + np.arange(members.size)
    return gpu[:model.num_real]


def _assign(group_of: np.ndarray, domains: np.ndarray, gpus_per_domain: np.ndarray, count: int) -> np.ndarray:
    """Map each group (label per item) to a distinct domain, groups in order of their smallest item."""
    groups = np.unique(group_of)
    if groups.size > count:
        raise ValueError(f"{groups.size} groups for {count} domains")
    sizes = np.array([(group_of == g).sum() for g in groups])
    if np.unique(gpus_per_domain).size == 1 and np.unique(sizes).size > 1:
        raise ValueError("groups of unequal size for equal domains")
    out = np.empty(group_of.size, dtype=np.int64)
    for g, d in zip(groups, domains):
        out[group_of == g] = d
    return out
