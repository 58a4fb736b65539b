"""`topk` arrays in .npy/.npz: streamed blocks, missing rows, padding, refused files."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.traces import arrays
from moeplace.traces.read import ReadOptions, read_stats
from moeplace.traces.stats import RoutingStats
from tests.traces.helpers import FLAME_NPZ, assert_error, assert_same_counts, flame_topk, run


def test_npz_read_in_small_blocks_equals_one_block(monkeypatch, tmp_path):
    whole = read_stats(FLAME_NPZ)
    monkeypatch.setattr(arrays, "BLOCK_ROWS", 37)
    assert_same_counts(whole, read_stats(FLAME_NPZ))
    np.save(tmp_path / "t.npy", flame_topk())
    npy = read_stats(tmp_path / "t.npy", ReadOptions(num_experts=64))
    assert_same_counts(whole, npy)
    assert npy.layer_numbers == tuple(range(8)) and whole.layer_numbers == tuple(range(2, 10))


def test_minus_one_marks_missing_records_and_bad_rows_are_dropped(tmp_path):
    topk = np.array([[[0, 1], [2, 3], [1, 0]]] * 4)
    topk[1, 2] = -1                      # token 1 has no record at layer 2
    topk[2, 0, 1] = -1                   # token 2, layer 0: a row with one id missing -> dropped there
    topk[3, 1, 1] = 2                    # token 3, layer 1: expert 2 twice -> dropped there
    np.savez(tmp_path / "t.npz", topk=topk, num_experts=np.int64(4))
    s = read_stats(tmp_path / "t.npz")
    assert s.dropped_records == {"duplicate_expert": 1, "incomplete_row": 1}
    assert s.tokens_L.tolist() == [3, 3, 3] and s.trans_dropped_L1.tolist() == [2, 2]
    assert s.num_tokens == 4 and s.paths_TLK.shape[0] == 1


def test_rows_with_missing_layers_count_where_present(tmp_path):
    topk = np.array([[[0, 1], [2, 3], [1, 0]]] * 3)
    topk[1, 2] = -1
    np.savez(tmp_path / "t.npz", topk=topk, num_experts=np.int64(4))
    s = read_stats(tmp_path / "t.npz")
    assert s.tokens_L.tolist() == [3, 3, 2] and s.trans_dropped_L1.tolist() == [0, 1]
    assert s.paths_TLK.shape[0] == 2 and s.load_LE[2].tolist() == [2, 2, 0, 0]
    assert s.trans_LEE[1].sum() == 2 * 4


def test_truncated_npz_is_refused(tmp_path, capsys):
    data = FLAME_NPZ.read_bytes()
    bad = tmp_path / "cut.npz"
    bad.write_bytes(data[: len(data) // 2])
    code, _, err = run(["stats", "build", str(bad), "-o", str(tmp_path / "s.npz")], capsys)
    assert code == 2 and err.startswith(f"error: {bad}: not a readable .npz, truncated or corrupt (BadZipFile")
    assert err.count("\n") == 1


def test_pickled_npz_is_refused(tmp_path, capsys):
    np.savez(tmp_path / "p.npz", topk=np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = run(["stats", "build", str(tmp_path / "p.npz"), "--num-experts", "4", "-o",
                        str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{tmp_path / 'p.npz'}: topk: holds pickled objects, which moeplace never loads")


def test_out_of_range_id_names_token_layer_and_choice(tmp_path, capsys):
    topk = flame_topk()[:10].copy()
    topk[7, 3, 4] = 70
    np.savez(tmp_path / "t.npz", topk=topk, num_experts=np.int64(64))
    code, _, err = run(["stats", "build", str(tmp_path / "t.npz"), "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{tmp_path / 't.npz'}: topk: expert id 70 at token 7, layer 3, choice 4 outside 0..63")


def test_float_ids_and_empty_arrays_are_refused(tmp_path, capsys):
    np.savez(tmp_path / "f.npz", topk=np.zeros((2, 2, 2), np.float32))
    code, _, err = run(["stats", "build", str(tmp_path / "f.npz"), "--num-experts", "4", "-o",
                        str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{tmp_path / 'f.npz'}: topk: must hold integer expert ids, got dtype float32")
    np.savez(tmp_path / "e.npz", topk=np.zeros((0, 2, 2), np.int32))
    code, _, err = run(["stats", "build", str(tmp_path / "e.npz"), "--num-experts", "4", "-o",
                        str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{tmp_path / 'e.npz'}: topk: holds no tokens")


def test_empty_file_is_refused(tmp_path, capsys):
    (tmp_path / "e.npz").write_bytes(b"")
    code, _, err = run(["stats", "build", str(tmp_path / "e.npz"), "-o", str(tmp_path / "s.npz")], capsys)
    assert code == 2 and err.startswith(f"error: {tmp_path / 'e.npz'}: not a readable .npz")


@pytest.mark.parametrize("keep", [None, 50])
def test_from_paths_and_the_reader_agree(keep):
    s = read_stats(FLAME_NPZ, ReadOptions(keep_paths=keep))
    assert_same_counts(s, RoutingStats.from_paths(flame_topk(), 64, keep_paths=keep))
    assert s.paths_TLK.shape[0] == (512 if keep is None else keep)
