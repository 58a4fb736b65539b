"""EPLB's algorithm (against its published example) and `moeplace.rebalance` (never worse, fewer bytes)."""

from __future__ import annotations

import numpy as np
import pytest

import moeplace
from moeplace.ep.eplb import eplb_rebalance, gpu_load_LG
from moeplace.ep.rebalance import coact_from_topk
from moeplace.ep.score import score
from moeplace.traces.synth import synthesize_paths

README_WEIGHT = np.array([[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                          [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]], dtype=float)


def test_eplb_matches_its_published_example():
    phy2log, log2phy, logcnt = eplb_rebalance(README_WEIGHT, 16, 4, 2, 8)
    assert phy2log.tolist() == [[5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
                                [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1]]
    assert logcnt.tolist() == [[1, 2, 1, 1, 2, 2, 1, 1, 1, 1, 2, 1], [1, 2, 1, 1, 1, 2, 2, 1, 2, 1, 1, 1]]
    assert log2phy.shape == (2, 12, 2) and log2phy[0, 1].tolist() == [15, 13] and log2phy[0, 0].tolist() == [12, -1]


def _consistent(phy2log, log2phy, logcnt, E):
    for li in range(phy2log.shape[0]):
        assert np.bincount(phy2log[li], minlength=E).tolist() == logcnt[li].tolist()
        for e in range(E):
            slots = log2phy[li, e][log2phy[li, e] >= 0]
            assert slots.size == logcnt[li, e] and (phy2log[li, slots] == e).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rebalance_never_worse_than_eplb_on_random_weights(seed):
    rng = np.random.default_rng(seed)
    w = np.exp(1.5 * rng.standard_normal((6, 64)))
    for args in ((80, 8, 2, 16), (96, 8, 4, 32), (80, 8, 16, 16)):
        phy2log, log2phy, logcnt = moeplace.rebalance(w, *args)
        ref, _, _ = eplb_rebalance(w, *args)
        assert phy2log.shape == ref.shape
        _consistent(phy2log, log2phy, logcnt, 64)
        assert (gpu_load_LG(w, phy2log, args[3]).max(1) <= gpu_load_LG(w, ref, args[3]).max(1) + 1e-9).all()


def test_rebalance_with_coactivation_cuts_cross_node_bytes_and_keeps_balance():
    L, E, k, W, N = 4, 64, 6, 16, 4
    plan = synthesize_paths(L, E, k, num_tokens=2048, seed=3, cluster_size=8, coact=0.8)
    test = synthesize_paths(L, E, k, num_tokens=1024, seed=3, path_seed=1, cluster_size=8, coact=0.8)
    w = np.stack([np.bincount(plan[:, li].ravel(), minlength=E) for li in range(L)]).astype(float)
    ref, _, _ = eplb_rebalance(w, 80, 8, N, W)
    ours, log2phy, logcnt = moeplace.rebalance(w, 80, 8, N, W, coact=coact_from_topk(plan, E))
    _consistent(ours, log2phy, logcnt, E)
    assert (gpu_load_LG(w, ours, W).max(1) <= gpu_load_LG(w, ref, W).max(1) + 1e-9).all()
    a, b = score(ref, test, W, N), score(ours, test, W, N)
    assert b["cross_node_bytes_per_token"] < 0.9 * a["cross_node_bytes_per_token"]
    paths, _, _ = moeplace.rebalance(w, 80, 8, N, W, coact=plan)  # token paths: also a km1-partition start
    assert (gpu_load_LG(w, paths, W).max(1) <= gpu_load_LG(w, ref, W).max(1) + 1e-9).all()
    assert score(paths, test, W, N)["cross_node_bytes_per_token"] < 0.9 * a["cross_node_bytes_per_token"]
    assert np.array_equal(paths, moeplace.rebalance(w, 80, 8, N, W, coact=plan)[0])  # reproducible


def test_rebalance_takes_and_returns_torch():
    torch = pytest.importorskip("torch")
    phy2log, log2phy, logcnt = moeplace.rebalance(torch.tensor(README_WEIGHT), 16, 4, 2, 8)
    assert all(isinstance(x, torch.Tensor) and x.dtype == torch.int64 for x in (phy2log, log2phy, logcnt))
    assert phy2log.tolist() == moeplace.rebalance(README_WEIGHT, 16, 4, 2, 8)[0].tolist()


@pytest.mark.parametrize("args, message", [
    ((12, 4, 2, 8), "not a multiple of num_gpus 8"),
    ((8, 4, 2, 8), "num_replicas 8 < 12 experts"),
    ((16, 5, 2, 8), "do not split into num_groups 5"),
    ((16, 4, 3, 8), "num_gpus 8 is not a multiple of num_nodes 3"),
])
def test_rebalance_refuses_impossible_layouts(args, message):
    with pytest.raises(ValueError, match=message):
        moeplace.rebalance(README_WEIGHT, *args)


def test_fabric_costs_are_checked_and_used():
    rng = np.random.default_rng(4)
    w = np.exp(rng.standard_normal((2, 32)))
    paths = synthesize_paths(2, 32, 4, num_tokens=512, seed=4, cluster_size=4, coact=0.8)
    with pytest.raises(ValueError, match=r"fabric: node cost is \(3, 3\), expected \(4, 4\)"):
        moeplace.rebalance(w, 48, 4, 4, 16, coact=paths, fabric=np.ones((3, 3)))
    near = np.array([[0, 1, 3, 3], [1, 0, 3, 3], [3, 3, 0, 1], [3, 3, 1, 0]], dtype=float)
    flat, _, _ = moeplace.rebalance(w, 48, 4, 4, 16, coact=paths, partition=False)
    tiered, _, _ = moeplace.rebalance(w, 48, 4, 4, 16, coact=paths, fabric=near, partition=False)
    assert not np.array_equal(flat, tiered)
    co = coact_from_topk(paths, 32)

    def q(phy):  # the tier-weighted co-activation across nodes that Step 2 lowers
        total = 0.0
        for li in range(2):
            X = np.zeros((32, 4))
            np.add.at(X, (phy[li], np.arange(48) // 3 // 4), 1.0)
            X /= X.sum(1, keepdims=True)
            total += float(np.einsum("ef,en,nm,fm->", co[li], X, near, X))
        return total
    from moeplace.ep.rebalance import best_balance

    assert q(tiered) < q(best_balance(w, 48, 4, 4, 16))     # Step 2 descends on the tiered cost it was given
