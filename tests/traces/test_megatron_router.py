"""Megatron-LM router traces (`router_trace_rank{N}.jsonl`, RouterTracer): the sample holds sequences 0-3 of
the FLAME sample in the tracer's layout (tests/data/routing/make_engine_samples.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from moeplace.traces.read import ReadOptions, detect_format, read_stats
from moeplace.traces.stats import RoutingStats
from tests.traces.helpers import DATA, assert_error, assert_same_counts, flame_sequence, flame_topk, run

TRACE = DATA / "megatron-router"
RANK0 = TRACE / "router_trace_rank0.jsonl"


def test_router_trace_directory_gives_the_same_counts_as_the_same_tokens():
    assert detect_format(TRACE) == "megatron-router"
    s = read_stats(TRACE, ReadOptions(num_experts=64))
    assert s.layer_numbers == tuple(range(2, 10)) and s.num_tokens == 256 and s.dropped_records == {}
    assert_same_counts(s, RoutingStats.from_paths(flame_topk()[flame_sequence() < 4], 64))
    assert s.provenance["mode"] == "megatron_router_trace" and s.provenance["files"] == 2
    assert s.provenance["records"] == 40 and s.provenance["mtp_records_skipped"] == 1


def test_one_rank_file_is_sniffed_by_its_first_line_and_read_alone():
    assert detect_format(RANK0) == "megatron-router"
    assert detect_format(DATA / "flame-moe-290m" / "encoder_512tok.jsonl") == "jsonl"
    s = read_stats(RANK0, ReadOptions(num_experts=64))
    seq = flame_sequence()
    assert_same_counts(s, RoutingStats.from_paths(flame_topk()[(seq == 0) | (seq == 2)], 64))


def test_stats_build_needs_the_expert_count(tmp_path, capsys):
    code, _, err = run(["stats", "build", str(TRACE), "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{RANK0}: Megatron-LM router traces do not say how many experts a layer has: give "
                 "--num-experts or --model")
    code, out, err = run(["stats", "build", str(TRACE), "--num-experts", "64", "-o", str(tmp_path / "s.npz")],
                         capsys)
    assert code == 0, err
    assert "256 tokens" in out


def _line(**change):
    rec = json.loads(RANK0.read_text().splitlines()[3])
    rec.update(change)
    for k, v in list(rec.items()):
        if v is None:
            del rec[k]
    return json.dumps(rec)


@pytest.mark.parametrize("line, message", [
    ('{"step": 0, "layer": 5, "num_tokens": 64', "not JSON"),
    (_line(top_indices=None), "top_indices: missing (a router-trace record has step, layer, num_tokens, topk, "
     "top_indices)"),
    (_line(num_tokens=63), "top_indices: must be integer [num_tokens 63][topk 6], got int64 [64, 6]"),
    (_line(layer=11), "layer: layer 11 is not among the trace's layers [2, 3, 4, 5, 6, 7, 8, 9] (those of its first "
     "step; --layers names them)"),
    (_line(step="0"), "step: must be a whole number >= 0, got '0'"),
    (_line(top_indices=[[1.5] * 6] * 64), "top_indices: must be integer [num_tokens 64][topk 6], got float64 [64, 6]"),
])
def test_malformed_line_names_file_line_and_key(tmp_path, capsys, line, message):
    d = tmp_path / "trace"
    shutil.copytree(TRACE, d)
    f = d / "router_trace_rank1.jsonl"
    lines = f.read_text().splitlines()
    lines[9] = line
    f.write_text("\n".join(lines) + "\n")
    code, _, err = run(["stats", "build", str(d), "--num-experts", "64", "-o", str(tmp_path / "s.npz")], capsys)
    assert code == 2 and err.startswith(f"error: {f}:10: {message}") and err.count("\n") == 1


def test_expert_id_outside_the_model_names_the_line(tmp_path, capsys):
    f = tmp_path / "router_trace_rank0.jsonl"
    lines = RANK0.read_text().splitlines()
    rec = json.loads(lines[2])
    rec["top_indices"][5][1] = 64
    lines[2] = json.dumps(rec)
    f.write_text("\n".join(lines) + "\n")
    code, _, err = run(["stats", "build", str(f), "--num-experts", "64", "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{f}:3: top_indices: expert id 64 at token 5, choice 1 (layer 4) outside 0..63")


def test_a_layer_with_other_rows_is_misaligned(tmp_path):
    f = tmp_path / "router_trace_rank0.jsonl"
    lines = RANK0.read_text().splitlines()
    rec = json.loads(lines[3])  # step 0, layer 5
    rec["num_tokens"], rec["top_indices"] = 60, rec["top_indices"][:60]
    lines[3] = json.dumps(rec)
    f.write_text("\n".join(lines) + "\n")
    s = read_stats(f, ReadOptions(num_experts=64))
    assert s.num_tokens == 128 and s.dropped_records == {"misaligned_rows": 60}
    assert s.trans_tokens_L1.tolist() == [128, 128, 64, 64, 128, 128, 128]
    assert np.asarray(s.tokens_L).tolist()[3] == 124


def test_solve_plans_from_a_router_trace_directory(tmp_path, capsys):
    code, out, err = run(["solve", "--model", "examples/flame-moe-290m.toml", "--nodes", "64", "--stats", str(TRACE),
                          "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    plan = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert plan["stats"]["num_tokens"] == 256 and "assumed_independent" not in plan["stats"]["provenance"]
