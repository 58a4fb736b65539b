"""Counting kernels against counts by definition, and the sample keys."""

from __future__ import annotations

import numpy as np

from moeplace.traces.kernels import count_paths, duplicate_rows, sample_keys, splitmix64
from tests.traces.helpers import brute_counts


def test_two_tokens_by_hand():
    # token 0: layer 0 {1, 2} -> layer 1 {0, 3}; token 1: layer 0 {2, 0} -> layer 1 {3, 1}
    c = count_paths(np.array([[[1, 2], [0, 3]], [[2, 0], [3, 1]]]), 4)
    assert c.load_LE.tolist() == [[1, 1, 2, 0], [1, 1, 0, 2]]
    assert c.coact_LEE[0, 1, 2] == c.coact_LEE[0, 2, 1] == 1 and c.coact_LEE[0, 0, 2] == 1
    assert c.coact_LEE.sum() == 8 and np.trace(c.coact_LEE[1]) == 0
    assert c.trans_LEE[0, 2, 3] == 2 and c.trans_LEE.sum() == 8
    assert c.trans_primary_LEE[0, 1, 0] == 1 and c.trans_primary_LEE[0, 2, 3] == 1 and c.trans_primary_LEE.sum() == 4
    assert c.tokens_L.tolist() == [2, 2] and c.trans_tokens_L1.tolist() == [2] and c.trans_dropped_L1.tolist() == [0]


def test_random_paths_match_the_definition_with_and_without_missing_layers():
    rng = np.random.default_rng(3)
    E, L, k, N = 7, 4, 3, 60
    paths = np.stack([[rng.choice(E, k, replace=False) for _ in range(L)] for _ in range(N)])
    present = rng.random((N, L)) > 0.25
    for mask in (None, present):
        c = count_paths(paths, E, mask)
        load, coact, trans, prim = brute_counts(paths, E, mask)
        assert np.array_equal(c.load_LE, load) and np.array_equal(c.coact_LEE, coact)
        assert np.array_equal(c.trans_LEE, trans) and np.array_equal(c.trans_primary_LEE, prim)
    c = count_paths(paths, E, present)
    assert c.tokens_L.tolist() == present.sum(0).tolist()
    both = present[:, :-1] & present[:, 1:]
    assert c.trans_tokens_L1.tolist() == both.sum(0).tolist()
    assert c.trans_dropped_L1.tolist() == (present[:, :-1] != present[:, 1:]).sum(0).tolist()
    assert (c.trans_LEE.sum(axis=(1, 2)) == k * k * both.sum(0)).all()


def test_duplicate_rows():
    assert duplicate_rows(np.array([[1, 2, 3], [4, 4, 0], [5, 6, 5]])).tolist() == [False, True, True]


def test_sample_keys_are_distinct_for_distinct_positions_and_depend_on_the_salt():
    pos = np.arange(100_000)
    k1 = sample_keys(1, pos)
    assert np.unique(k1).size == pos.size
    assert not np.array_equal(k1, sample_keys(2, pos))
    assert int(splitmix64(np.array([0], np.uint64))[0]) == 0xE220A8397B1DCDAF  # the reference splitmix64(0)


def test_duplicate_rows_of_wide_rows_sort_instead_of_comparing_pairs():
    rows = np.tile(np.arange(4000), (3, 1))
    rows[1, 3999] = 17
    assert duplicate_rows(rows).tolist() == [False, True, False]
