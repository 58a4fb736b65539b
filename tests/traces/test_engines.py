"""Engine dumps: vLLM EPLB load records and routed experts, TensorRT-LLM `rank{r}_raw`, Megatron routing traces.

The samples (tests/data/routing/make_engine_samples.py) hold sequences 0-3 of the FLAME sample in each
engine's layout, so every reader is checked against the statistics of the same tokens.
"""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from moeplace.traces.read import ReadOptions, detect_format, read_stats
from moeplace.traces.stats import RoutingStats
from tests.data.routing.make_samples import write_safetensors
from tests.traces.helpers import DATA, assert_error, assert_same_counts, flame_sequence, flame_topk, run

EPLB = DATA / "vllm" / "eplb_load_stats.jsonl"
ROUTED = DATA / "vllm" / "routed_experts.npz"
RAW = DATA / "trtllm-raw"
MEGATRON = DATA / "megatron"


def reference():
    return RoutingStats.from_paths(flame_topk()[flame_sequence() < 4], 64)


def test_vllm_eplb_records_map_slots_to_logical_experts_across_rearrangements():
    assert detect_format(EPLB) == "vllm-eplb"
    s = read_stats(EPLB, ReadOptions(top_k=6))
    assert s.measured == ("load",) and s.layer_numbers == tuple(range(8)) and s.num_tokens == 256
    assert np.array_equal(s.load_LE, reference().load_LE)
    assert s.provenance["mode"] == "eplb_load_stats" and s.provenance["steps"] == 4


def test_vllm_eplb_stats_build_says_what_was_not_measured(tmp_path, capsys):
    code, _, err = run(["stats", "build", str(EPLB), "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{EPLB}: EPLB load records hold loads only, not top-k: give --top-k or --model")
    code, out, err = run(["stats", "build", str(EPLB), "--top-k", "6", "-o", str(tmp_path / "s.npz")], capsys)
    assert code == 0, err
    assert "co-activation and layer-to-layer traffic were not measured" in out
    # what was read: 4 eplb_load_stats records x 8 layers, not (token, layer) records
    assert "32 load records (one layer's expert counts each)" in out and "(token, layer) records" not in out
    code, out, err = run(["stats", "build", str(EPLB), "--top-k", "6", "--json", "--force", "-o",
                          str(tmp_path / "s.npz")], capsys)
    summary = json.loads(out)
    assert summary["load_records"] == 32 and summary["records"] is None and summary["records_per_s"] is None


@pytest.mark.parametrize("lines, where, message", [
    (['{"record_type": "eplb_load_stats", "version": 1, "step": 1, "expert_load": [[1]], "p2l_map": [[0]]}'],
     1, "record_type: eplb_load_stats record before the eplb_load_meta record"),
    (["META", "META"], 2, "record_type: a second eplb_load_meta record"),
    (["META", '{"record_type": "eplb_load_stats", "step": 1, "expert_load": [[1, 2]], "p2l_map": [[0, 1, 1]]}'],
     2, "p2l_map: expert_load shape (1, 2) does not match p2l_map shape (1, 3)"),
    (["META", '{"record_type": "eplb_load_stats", "step": 1, "expert_load": [[1, -2]], "p2l_map": [[0, 1]]}'],
     2, "expert_load: negative count -2 at index [0, 1]"),
    (["META", '{"record_type": "eplb_load_stats", "step": 1, "p2l_map": [[0, 1]]}'],
     2, "expert_load: eplb_load_stats record without 'expert_load'"),
    (['{"record_type": "eplb_load_meta", "num_layers": "8"}'], 1, "num_layers: must be a whole number >= 1, got '8'"),
    (["META", '{"record_type": "eplb_load_stats", "step": 1, "expert_load": [[1, 2], [3]], "p2l_map": [[0, 1]]}'],
     2, "expert_load: must be a [layers][physical slots] matrix of numbers"),
    (["META", '{"record_type": "garbage"}'], 2, "record_type: unexpected record_type 'garbage' (expected "
     "eplb_load_meta or eplb_load_stats)"),
])
def test_vllm_eplb_malformed_records_name_the_line_and_key(tmp_path, capsys, lines, where, message):
    f = tmp_path / "eplb.jsonl"
    meta = '{"record_type": "eplb_load_meta", "version": 1, "num_layers": 1}'
    f.write_text("\n".join(meta if x == "META" else x for x in lines) + "\n")
    code, _, err = run(["stats", "build", str(f), "--top-k", "1", "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{f}:{where}: {message}")


def test_vllm_routed_experts_one_member_per_request():
    assert detect_format(ROUTED) == "vllm-routed"
    s = read_stats(ROUTED, ReadOptions(num_experts=64))
    assert s.num_tokens == 256 and s.provenance["requests"] == 4 and s.dropped_records == {}
    assert_same_counts(s, reference())
    one = read_stats(DATA / "vllm" / "routed_experts_request0.npy", ReadOptions(num_experts=64))
    assert_same_counts(one, RoutingStats.from_paths(flame_topk()[flame_sequence() == 0], 64))


def test_vllm_routed_experts_errors_name_the_member(tmp_path, capsys):
    with np.load(ROUTED) as z:
        a, b = z["arr_0"].copy(), z["arr_1"].copy()
    b[3, 2, 1] = 70
    np.savez(tmp_path / "r.npz", a, b)
    code, _, err = run(["stats", "build", str(tmp_path / "r.npz"), "--num-experts", "64", "-o",
                        str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{tmp_path / 'r.npz'}: arr_1: expert id 70 at token 67, layer 2, choice 1 outside 0..63")
    np.savez(tmp_path / "k.npz", a, b[:, :, :4])
    code, _, err = run(["stats", "build", str(tmp_path / "k.npz"), "--num-experts", "64", "-o",
                        str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{tmp_path / 'k.npz'}: arr_1: shape (64, 8, 4): [layers, top_k] differ from arr_0's "
                 "(64, 8, 6)")


def test_trtllm_raw_files_give_full_statistics():
    s = read_stats(RAW)
    assert s.provenance["mode"] == "token_selected_experts" and s.layer_numbers == tuple(range(2, 10))
    assert s.num_tokens == 256 and s.dropped_records == {}
    assert_same_counts(s, reference())
    loads = read_stats(RAW / "rank0.safetensors")  # int64 torch.bincount, loads only
    assert loads.measured == ("load",) and loads.num_tokens == 128


def test_trtllm_truncated_or_lying_header_names_file_and_key(tmp_path, capsys):
    d = tmp_path / "trt"
    shutil.copytree(RAW, d)
    f = d / "rank1_raw.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    code, _, err = run(["stats", "build", str(d), "-o", str(tmp_path / "s.npz")], capsys)
    assert code == 2 and err.startswith(f"error: {f}: 101_9: data [") and "(truncated?)" in err
    write_safetensors(f, {"100_2": np.zeros((3, 5), np.int32)})
    code, _, err = run(["stats", "build", str(d), "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{f}: 100_2: shape (3, 5), expected [tokens, 6] (num_experts_per_token 6)")


def test_megatron_trace_directories_give_full_statistics():
    pytest.importorskip("torch")
    assert detect_format(MEGATRON) == "megatron"
    s = read_stats(MEGATRON)
    assert s.layer_numbers == tuple(range(2, 10)) and s.num_tokens == 256 and s.dropped_records == {}
    assert_same_counts(s, reference())
    one = read_stats(MEGATRON / "step1_layer5")
    assert one.layer_numbers == (5,) and one.num_tokens == 128


@pytest.mark.parametrize("source, load_only", [(EPLB, True), (ROUTED, False), (RAW, False), (MEGATRON, False)])
def test_solve_plans_from_every_engine_dump(tmp_path, capsys, source, load_only):
    if source == MEGATRON:
        pytest.importorskip("torch")
    code, out, err = run(["solve", "--model", "examples/flame-moe-290m.toml", "--nodes", "64", "--stats",
                          str(source), "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    plan = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert plan["stats"]["num_tokens"] == 256
    assert ("co-activation and layer-to-layer traffic were not measured" in " ".join(out.split())) == load_only
    assert ("assumed_independent" in plan["stats"]["provenance"]) == load_only


def test_megatron_malformed_traces_name_file_and_key(tmp_path, capsys):
    pytest.importorskip("torch")
    d = tmp_path / "m"
    shutil.copytree(MEGATRON, d)
    t = d / "step0_layer3" / "tensors" / "expert_ids.pt"
    t.write_bytes(t.read_bytes()[:-10])
    code, _, err = run(["stats", "build", str(d), "-o", str(tmp_path / "s.npz")], capsys)
    assert code == 2 and err.startswith(f"error: {t}: expert_ids: sha256 does not match the manifest's ")
    man = d / "step0_layer2" / "manifest.json"
    m = json.loads(man.read_text())
    del m["topk"]
    man.write_text(json.dumps(m))
    code, _, err = run(["stats", "build", str(d), "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{man}: topk: missing")
    m["topk"], m["schema_version"] = 6, 2
    man.write_text(json.dumps(m))
    code, _, err = run(["stats", "build", str(d), "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{man}: schema_version: schema_version 2, moeplace reads 1")


def test_megatron_without_torch_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    code, _, err = run(["stats", "build", str(MEGATRON / "step0_layer2"), "-o", str(tmp_path / "s.npz")], capsys)
    f = MEGATRON / "step0_layer2" / "tensors" / "expert_ids.pt"
    assert_error(code, err, f"{f}: reading Megatron routing traces needs PyTorch, which is not installed: "
                 "pip install 'moeplace[runtime]'")


def test_manifest_and_meta_info_files_name_their_directories():
    assert detect_format(RAW / "meta_info.json") == "trtllm"
    assert_same_counts(read_stats(RAW / "meta_info.json"), reference())
    pytest.importorskip("torch")
    f = MEGATRON / "step1_layer5" / "manifest.json"
    assert detect_format(f) == "megatron"
    assert read_stats(f).layer_numbers == (5,)


def test_megatron_layer_with_other_rows_is_misaligned(tmp_path):
    torch = pytest.importorskip("torch")
    import hashlib

    d = tmp_path / "m"
    shutil.copytree(MEGATRON, d)
    t = d / "step0_layer5"
    ranks = torch.load(t / "tensors" / "source_rank.pt", weights_only=True)
    torch.save(1 - ranks, t / "tensors" / "source_rank.pt")
    man = json.loads((t / "manifest.json").read_text())
    man["tensors"]["source_rank"]["sha256"] = hashlib.sha256((t / "tensors" / "source_rank.pt").read_bytes()).hexdigest()
    (t / "manifest.json").write_text(json.dumps(man))
    s = read_stats(d)
    ref = reference()
    assert s.dropped_records == {"misaligned_rows": 128}
    assert np.array_equal(s.load_LE, ref.load_LE) and np.array_equal(s.coact_LEE, ref.coact_LEE)
    assert s.trans_tokens_L1.tolist() == [256, 256, 128, 128, 256, 256, 256]
