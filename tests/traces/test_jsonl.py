"""JSON-lines traces: equal to the .npz of the same tokens, chunking and workers, missing data, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moeplace.traces.read import ReadOptions, read_stats
from moeplace.traces.stats import RoutingStats
from tests.conftest import shared_routing_dir
from tests.traces.helpers import FLAME_JSONL, FLAME_NPZ, assert_error, assert_same_counts, flame_topk, run


def test_flame_jsonl_and_npz_give_identical_statistics():
    a = read_stats(FLAME_NPZ)
    b = read_stats(FLAME_JSONL, ReadOptions(num_experts=64))
    assert_same_counts(a, b)
    assert np.array_equal(a.paths_TLK, b.paths_TLK) and a.num_tokens == b.num_tokens == 512
    assert a.layer_numbers == b.layer_numbers == (2, 3, 4, 5, 6, 7, 8, 9)
    assert_same_counts(a, RoutingStats.from_paths(flame_topk(), 64))


def test_full_shared_flame_trace_jsonl_equals_npz():
    d = shared_routing_dir() / "flame-moe-290m"
    if not (d / "encoder_2048tok.jsonl").is_file():
        pytest.skip("shared FLAME trace not present")
    a = read_stats(d / "encoder_2048tok.npz")
    b = read_stats(d / "encoder_2048tok.jsonl", ReadOptions(num_experts=64, chunk_bytes=300_000, jobs=2))
    assert_same_counts(a, b)
    assert np.array_equal(a.paths_TLK, b.paths_TLK) and b.num_tokens == 2048


@pytest.mark.parametrize("jobs", [1, 2])
def test_small_chunks_and_workers_change_nothing(jobs):
    whole = read_stats(FLAME_JSONL, ReadOptions(num_experts=64, keep_paths=100, jobs=1))
    chunked = read_stats(FLAME_JSONL, ReadOptions(num_experts=64, keep_paths=100, jobs=jobs, chunk_bytes=20_000))
    assert_same_counts(whole, chunked)
    assert whole.paths_TLK.shape == (100, 8, 6)
    assert np.array_equal(whole.paths_TLK, chunked.paths_TLK)
    assert np.array_equal(whole.paths_key_T, chunked.paths_key_T)


def write_lines(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def flame_records(tokens=64):
    topk = flame_topk()[:tokens]
    return [{"token": t, "layer": 2 + li, "experts": topk[t, li].tolist()} for t in range(tokens) for li in range(8)]


def test_layer_major_order_across_chunks_gives_the_token_major_statistics(tmp_path):
    recs = flame_records()
    write_lines(tmp_path / "tm.jsonl", recs)
    write_lines(tmp_path / "lm.jsonl", sorted(recs, key=lambda r: (r["layer"], r["token"])))
    a = read_stats(tmp_path / "tm.jsonl", ReadOptions(num_experts=64))
    b = read_stats(tmp_path / "lm.jsonl", ReadOptions(num_experts=64, chunk_bytes=4000, jobs=2,
                                                      layer_numbers=tuple(range(2, 10))))
    assert_same_counts(a, b)
    assert np.array_equal(a.paths_TLK, b.paths_TLK)


def test_missing_layers_duplicates_and_the_counts_of_what_was_dropped(tmp_path):
    recs = flame_records(8)
    recs[5 * 8 + 1]["experts"][1] = recs[5 * 8 + 1]["experts"][0]   # token 5, layer 3: an expert twice
    del recs[3 * 8 + 4]                                     # token 3 has no record at layer 6
    recs.append(dict(recs[0]))                              # token 0, layer 2 again
    write_lines(tmp_path / "t.jsonl", recs)
    s = read_stats(tmp_path / "t.jsonl", ReadOptions(num_experts=64))
    assert s.dropped_records == {"duplicate_expert": 1, "duplicate_record": 1}
    assert s.num_tokens == 8 and s.tokens_L.tolist() == [8, 7, 8, 8, 7, 8, 8, 8]
    assert s.trans_dropped_L1.tolist() == [1, 1, 0, 1, 1, 0, 0]  # tokens 5 and 3
    assert s.trans_tokens_L1.tolist() == [7, 7, 8, 7, 7, 8, 8]
    assert s.paths_TLK.shape[0] == 6   # tokens 3 and 5 are partial: not in the path sample
    full = RoutingStats.from_paths(flame_topk()[:8], 64)
    assert (s.load_LE <= full.load_LE).all() and s.load_LE.sum() == full.load_LE.sum() - 12


def test_records_too_far_apart_are_split_into_partial_tokens(tmp_path):
    recs = flame_records(40)
    recs.append(recs.pop(0))                                 # token 0's first record moves to the end
    write_lines(tmp_path / "t.jsonl", recs)
    near = read_stats(tmp_path / "t.jsonl", ReadOptions(num_experts=64, chunk_bytes=3000))
    far = read_stats(tmp_path / "t.jsonl", ReadOptions(num_experts=64, chunk_bytes=3000, window_bytes=1000))
    assert near.num_tokens == 40 and near.trans_dropped_L1.sum() == 0
    assert far.num_tokens == 41 and far.trans_dropped_L1.tolist() == [2, 0, 0, 0, 0, 0, 0]


BAD = [
    ('{"token": 0, "layer": 2, "experts": [1, 2]}\n{"token": 0, "layer": 3, "experts": [1, 2\n',
     "line 2: malformed or truncated JSON (Input data was truncated)"),
    ('{"token": 0, "layer": 2, "experts": [1, 2]}\n{"token": 0, "layer": 3, "experts": [1, 2, 3]}\n',
     "line 2: 3 experts, the trace's rows have 2 (as its first line)"),
    ('{"token": 0, "layer": 2, "experts": [1, 2]}\n\n{"token": 0, "layer": 3, "experts": [1, 64]}\n',
     "line 3: expert id 64 outside 0..63"),
    ('{"token": 0, "layer": 2, "experts": [1, -2]}\n', "line 1: expert id -2 outside 0..63"),
    ('{"token": 0, "layer": 2, "experts": [1, 2]}\n{"token": "a", "layer": 3, "experts": [1, 2]}\n',
     "line 2: invalid record (Expected `int`, got `str` - at `$.token`)"),
    ('{"token": 0, "layer": 2, "experts": [1.5, 2]}\n',
     "line 1: invalid record (Expected `int`, got `float` - at `$.experts[0]`)"),
    ('{"token": 0, "layer": 2}\n', "line 1: invalid record (Object missing required field `experts`)"),
    ('\n  \n', "holds no records"),
    ('', "empty file"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_bad_lines_are_one_line_errors_naming_the_line(tmp_path, capsys, text, message):
    f = tmp_path / "bad.jsonl"
    f.write_text(text)
    code, _, err = run(["stats", "build", str(f), "--num-experts", "64", "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{f}: {message}")
    assert not (tmp_path / "s.npz").exists()


def test_a_layer_outside_the_first_chunk_needs_layers(tmp_path, capsys):
    f = tmp_path / "t.jsonl"
    write_lines(f, [{"token": 0, "layer": 2, "experts": [1, 2]}] * 300 + [{"token": 1, "layer": 5, "experts": [1, 2]}])
    out = str(tmp_path / "s.npz")
    code, _, err = run(["stats", "build", str(f), "--num-experts", "8", "--chunk-mb", "0.01", "-o", out], capsys)
    assert_error(code, err, f"{f}: line 301: layer 5 is not one of the trace's layers 2 (give them all with --layers)")
    code, _, err = run(["stats", "build", str(f), "--num-experts", "8", "--layers", "2,5", "-o", out], capsys)
    assert code == 0, err
    assert RoutingStats.load(out).layer_numbers == (2, 5)


def test_jsonl_needs_the_expert_count(tmp_path, capsys):
    code, _, err = run(["stats", "build", str(FLAME_JSONL), "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{FLAME_JSONL}: JSON lines do not say how many experts a layer has: give "
                 "--num-experts or --model")
