"""`read_topk`: whole trace arrays for planning, read through the same streaming reader as `stats build`."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.errors import InputError
from moeplace.traces.topk import read_topk


def test_npz_and_npy_read_whole(tmp_path):
    topk = np.random.default_rng(0).integers(0, 8, (70_000, 3, 2)).astype(np.int32)   # more than one block
    np.savez(tmp_path / "t.npz", topk=topk)
    np.save(tmp_path / "t.npy", topk)
    np.testing.assert_array_equal(read_topk(tmp_path / "t.npz"), topk)
    np.testing.assert_array_equal(read_topk(tmp_path / "t.npy"), topk)


@pytest.mark.parametrize("make, message", [
    (lambda p: np.savez(p, topk=np.zeros((2, 3), np.int32)), "topk: must be [tokens, moe_layers, k], got shape (2, 3)"),
    (lambda p: np.savez(p, topk=np.zeros((0, 3, 2), np.int32)), "topk: holds no tokens"),
    (lambda p: np.savez(p, paths=np.zeros((1, 3, 2), np.int32)), "no array 'topk' (found: paths)"),
    (lambda p: np.savez(p, topk=np.array([[[{}]]], dtype=object)), "holds pickled objects"),
    (lambda p: p.write_bytes(b"PK\x03\x04 not a zip"), "not a readable .npz"),
])
def test_bad_arrays_are_one_line_errors_naming_the_file(tmp_path, make, message):
    f = tmp_path / "bad.npz"
    make(f)
    with pytest.raises(InputError) as exc:
        read_topk(f)
    assert str(exc.value).startswith(f"{f}: ") and message in str(exc.value)
