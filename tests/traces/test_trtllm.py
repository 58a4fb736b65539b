"""TensorRT-LLM expert statistics: per-token files, co-occurrence matrices, bincounts, misaligned layers."""

from __future__ import annotations

import json
import shutil

import numpy as np

from moeplace.traces.read import read_stats
from moeplace.traces.stats import RoutingStats
from tests.data.routing.make_samples import write_safetensors
from tests.traces.helpers import DATA, assert_error, assert_same_counts, flame_sequence, flame_topk, run

TRT = DATA / "trtllm"


def tokens_of(seqs):
    return flame_topk()[np.isin(flame_sequence(), seqs)]


def test_directory_with_per_token_files_gives_full_statistics():
    s = read_stats(TRT)
    assert s.provenance["mode"] == "token_selected_experts" and s.layer_numbers == tuple(range(2, 10))
    # rank 0 holds sequences 0 and 2, rank 1 sequences 1 and 3
    assert_same_counts(s, RoutingStats.from_paths(np.concatenate([tokens_of([0]), tokens_of([2]), tokens_of([1]),
                                                                  tokens_of([3])]), 64))
    assert s.num_tokens == 256 and s.dropped_records == {}


def test_cooccurrence_matrices_give_load_and_coactivation():
    s = read_stats(TRT / "cooccurrence_rank0.safetensors")
    ref = RoutingStats.from_paths(tokens_of([0, 2]), 64)
    assert s.measured == ("load", "coact") and s.num_tokens == 128 and s.top_k == 6
    assert np.array_equal(s.load_LE, ref.load_LE) and np.array_equal(s.coact_LEE, ref.coact_LEE)
    assert not s.trans_LEE.any()


def test_bincounts_give_loads():
    s = read_stats(TRT / "rank1.safetensors")
    assert s.measured == ("load",) and np.array_equal(s.load_LE, RoutingStats.from_paths(tokens_of([1, 3]), 64).load_LE)


def test_a_misaligned_layer_is_counted_but_kept_out_of_transitions(tmp_path):
    d = tmp_path / "stats"
    d.mkdir()
    shutil.copyfile(TRT / "meta_info.json", d / "meta_info.json")
    rows = tokens_of([0]).astype(np.int32)
    tensors = {f"7_{layer}": rows[:, i] for i, layer in enumerate(range(2, 10))}
    tensors["7_5"] = rows[:40, 3]          # layer 5 logged 40 of the 64 tokens: rows no longer line up
    write_safetensors(d / "token_selected_experts_rank0.safetensors", tensors)
    s = read_stats(d)
    assert s.dropped_records == {"misaligned_rows": 40}
    assert s.tokens_L.tolist() == [64, 64, 64, 40, 64, 64, 64, 64]
    assert s.trans_dropped_L1.tolist() == [0, 0, 104, 104, 0, 0, 0]  # 64 unmatched at 4 and 6, 40 at 5
    assert s.load_LE[3].sum() == 40 * 6 and s.trans_LEE[2].sum() == 0 and s.paths_TLK is None


def test_truncated_safetensors_and_bad_shapes(tmp_path, capsys):
    f = tmp_path / "cooccurrence_rank0.safetensors"
    f.write_bytes((TRT / "cooccurrence_rank0.safetensors").read_bytes()[:100_000])
    (tmp_path / "meta_info.json").write_text(json.dumps({"num_experts": 64, "num_experts_per_token": 6}))
    code, _, err = run(["stats", "build", str(f), "-o", str(tmp_path / "s.npz")], capsys)
    assert code == 2 and err.startswith(f"error: {f}: ") and "does not hold" in err and "(truncated?)" in err
    write_safetensors(f, {"0_2": np.zeros((64, 64), np.int32) - 1})
    code, _, err = run(["stats", "build", str(f), "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{f}: 0_2: negative count -1 at index [0, 0]")
    write_safetensors(f, {"layer2": np.zeros((64, 64), np.int32)})
    code, _, err = run(["stats", "build", str(f), "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{f}: layer2: tensor name 'layer2' is not '<iteration>_<layer>'")


def test_both_per_token_names_for_one_rank_are_refused(tmp_path, capsys):
    d = tmp_path / "trt"
    shutil.copytree(TRT, d)
    shutil.copy(DATA / "trtllm-raw" / "rank1_raw.safetensors", d / "rank1_raw.safetensors")
    code, _, err = run(["stats", "build", str(d), "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{d}: rank 1 has per-token files under both names (rank1_raw.safetensors, "
                 "token_selected_experts_rank1.safetensors): they would count its tokens twice; keep one")
    (d / "token_selected_experts_rank1.safetensors").unlink()  # rank 0 old name, rank 1 new name: fine
    assert read_stats(d).num_tokens == 256
