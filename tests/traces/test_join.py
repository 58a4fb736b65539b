"""Joining (token, layer) records into tokens: order, duplicates, partial tokens, the window."""

from __future__ import annotations

import numpy as np

from moeplace.traces.join import Records, close, group, split_stale


def recs(rows):
    """rows: (token, layer index, experts, position)."""
    tok, lay, ex, pos = zip(*rows)
    return Records(np.array(tok, np.int64), np.array(lay, np.int64), np.array(ex, np.int64), np.array(pos, np.int64))


def test_layer_major_records_make_the_same_tokens_as_token_major():
    rows = [(t, li, [t + li, t + li + 1], 10 * t + li) for t in range(3) for li in range(2)]
    token_major = group(recs(rows), 2)
    layer_major = group(recs(sorted(rows, key=lambda r: (r[1], r[0]))), 2)
    assert np.array_equal(token_major.complete_NLK, layer_major.complete_NLK)
    assert token_major.complete_NLK[2].tolist() == [[2, 3], [3, 4]]
    assert layer_major.complete_pos_N.tolist() == [0, 10, 20] and layer_major.rest.size == 0


def test_a_second_record_for_a_token_and_layer_is_dropped_and_the_first_kept():
    g = group(recs([(5, 0, [1, 2], 0), (5, 0, [3, 4], 1), (5, 1, [0, 1], 2)]), 2)
    assert g.duplicates == 1
    assert g.complete_NLK.tolist() == [[[1, 2], [0, 1]]]


def test_incomplete_tokens_wait_and_close_as_partial():
    g = group(recs([(1, 0, [1, 2], 0), (2, 1, [3, 4], 1), (2, 0, [5, 6], 2), (3, 1, [7, 0], 3)]), 2)
    assert g.complete_NLK.tolist() == [[[5, 6], [3, 4]]]
    assert g.rest.token_R.tolist() == [1, 3]
    paths, present, first = close(g.rest, 2)
    assert present.tolist() == [[True, False], [False, True]]
    assert paths[0, 0].tolist() == [1, 2] and paths[1, 1].tolist() == [7, 0] and first.tolist() == [0, 3]


def test_split_stale_by_the_last_record_of_each_token():
    rest = recs([(1, 0, [1, 2], 5), (1, 2, [3, 4], 50), (7, 0, [0, 1], 20)])
    stale, live = split_stale(rest, 30)
    assert stale.token_R.tolist() == [7] and live.token_R.tolist() == [1, 1]
