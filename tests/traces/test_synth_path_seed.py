"""`path_seed`: the same synthetic workload (structure from `seed`), other tokens."""

from __future__ import annotations

import numpy as np

from moeplace.traces.synth import synthesize, synthesize_paths


def test_default_sample_is_unchanged_by_the_option():
    a = synthesize_paths(3, 8, 2, num_tokens=64, seed=5)
    b = synthesize_paths(3, 8, 2, num_tokens=64, seed=5, path_seed=None)
    assert np.array_equal(a, b)


def test_held_out_sample_shares_the_structure_not_the_tokens():
    """With affinity 1 every choice at l+1 is the successor of the same choice at l: the successor maps
    (structure) show in both samples identically, while the tokens differ."""
    a = synthesize_paths(3, 16, 2, num_tokens=256, affinity=1.0, seed=5)
    b = synthesize_paths(3, 16, 2, num_tokens=256, affinity=1.0, seed=5, path_seed=1)
    c = synthesize_paths(3, 16, 2, num_tokens=256, affinity=1.0, seed=6, path_seed=1)
    assert not np.array_equal(a, b)

    def succ_map(p):
        m = {}
        for x, y in zip(p[:, 0, :].ravel().tolist(), p[:, 1, :].ravel().tolist()):
            m.setdefault(x, y)
        return m
    ma, mb = succ_map(a), succ_map(b)
    assert all(ma[x] == mb[x] for x in ma.keys() & mb.keys()) and len(ma.keys() & mb.keys()) >= 12
    assert succ_map(c) != mb
    assert np.array_equal(b, synthesize_paths(3, 16, 2, num_tokens=256, affinity=1.0, seed=5, path_seed=1))


def test_provenance_records_path_seed():
    assert synthesize(2, 4, 2, num_tokens=16, path_seed=2).provenance["path_seed"] == 2
    assert "path_seed" not in synthesize(2, 4, 2, num_tokens=16).provenance
