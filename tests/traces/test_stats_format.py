"""The statistics .npz: format version 2, version 1 still loads, merging adds up exactly, bad files."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from moeplace.errors import InputError
from moeplace.traces.read import ReadOptions, read_stats
from moeplace.traces.stats import RoutingStats
from tests.traces.helpers import FLAME_JSONL, FLAME_NPZ, assert_same_counts, flame_sequence, flame_topk

V2_KEYS = ["coact", "dropped_records", "format_version", "keep_paths", "layers", "load", "measured", "num_tokens",
           "paths", "paths_key", "provenance", "tokens_per_layer", "top_k", "trans", "trans_dropped",
           "trans_pairing", "trans_primary", "trans_tokens"]


def test_round_trip_and_keys(tmp_path):
    s = read_stats(FLAME_NPZ, ReadOptions(keep_paths=100))
    s.save(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        assert sorted(z.files) == V2_KEYS
        assert int(z["format_version"]) == 2 and z["paths_key"].dtype == np.uint64
        assert list(z["measured"]) == ["load", "coact", "trans", "trans_primary"]
    back = RoutingStats.load(tmp_path / "s.npz")
    assert_same_counts(s, back)
    assert np.array_equal(s.paths_TLK, back.paths_TLK) and np.array_equal(s.paths_key_T, back.paths_key_T)
    assert back.keep_paths == 100 and back.provenance == s.provenance and back.layer_numbers == s.layer_numbers
    s.save(tmp_path / "again.npz")
    assert (tmp_path / "s.npz").read_bytes() == (tmp_path / "again.npz").read_bytes()


def test_version_1_files_load(tmp_path):
    ref = RoutingStats.from_paths(flame_topk()[:20], 64)
    buf = io.BytesIO()
    np.savez_compressed(buf, format_version=np.int64(1), load=ref.load_LE, coact=ref.coact_LEE, trans=ref.trans_LEE,
                        trans_primary=ref.trans_primary_LEE, num_tokens=np.int64(20), top_k=np.int64(6),
                        layers=np.arange(4, 12), provenance=np.str_(json.dumps({"source": "old"})),
                        paths=ref.paths_TLK)
    (tmp_path / "v1.npz").write_bytes(buf.getvalue())
    s = RoutingStats.load(tmp_path / "v1.npz")
    assert_same_counts(s, ref)
    assert s.measured == ("load", "coact", "trans", "trans_primary") and s.tokens_L.tolist() == [20] * 8
    assert s.provenance == {"source": "old"} and s.paths_key_T.shape == (20,)


def test_halves_add_up_to_the_whole():
    topk, seq = flame_topk(), flame_sequence()
    whole = RoutingStats.from_paths(topk, 64)
    a = RoutingStats.from_paths(topk[seq < 3], 64)
    b = RoutingStats.from_paths(topk[seq >= 3], 64)
    merged = a + b
    assert_same_counts(merged, whole)
    assert merged.num_tokens == 512 and np.array_equal(merged.paths_TLK, topk)
    assert merged.provenance["source"] == "merged"


def test_merged_sample_is_the_sample_of_the_union():
    # two files read with a 50-token sample each, merged, keep the same 50 tokens as reading both at once
    j = read_stats(FLAME_JSONL, ReadOptions(num_experts=64, keep_paths=50))
    n = read_stats(FLAME_NPZ, ReadOptions(keep_paths=50))
    both = read_stats(FLAME_JSONL, ReadOptions(num_experts=64, keep_paths=None)) + \
        read_stats(FLAME_NPZ, ReadOptions(keep_paths=None))
    merged = j + n
    assert merged.paths_TLK.shape[0] == 50 and merged.num_tokens == 1024
    keys = np.sort(both.paths_key_T)[:50]
    assert np.array_equal(np.sort(merged.paths_key_T), keys)


def test_merge_refuses_different_shapes():
    a = RoutingStats.from_paths(flame_topk()[:5], 64)
    b = RoutingStats.from_paths(flame_topk()[:5, :4], 64)
    with pytest.raises(InputError, match="cannot merge statistics with different layers"):
        a + b


@pytest.mark.parametrize("change,message", [
    (dict(format_version=np.int64(3)), "format_version: format_version 3 is not supported (expected one of 1, 2)"),
    (dict(trans_dropped=np.array([-1, 0, 0, 0, 0, 0, 0])), "trans_dropped: negative count -1"),
    (dict(measured=np.array(["load", "paths"])), "measured: must name load and only load, coact, trans, "
     "trans_primary, got ['load', 'paths']"),
    (dict(tokens_per_layer=np.zeros(3, np.int64)), "tokens_per_layer: shape (3,) does not match load's 8 layers x "
     "64 experts (expected (8,))"),
])
def test_bad_files(tmp_path, change, message):
    from moeplace.traces.statsfile import stats_arrays

    arrays = stats_arrays(RoutingStats.from_paths(flame_topk()[:5], 64))
    arrays.update(change)
    np.savez(tmp_path / "s.npz", **arrays)
    with pytest.raises(InputError) as exc:
        RoutingStats.load(tmp_path / "s.npz")
    assert str(exc.value) == f"{tmp_path / 's.npz'}: {message}"
