"""SGLang expert-distribution dumps: per_token and stat modes, torch optional, no pickled code."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from moeplace.traces.read import ReadOptions, read_stats
from moeplace.traces.stats import RoutingStats
from tests.traces.helpers import DATA, assert_error, assert_same_counts, flame_sequence, flame_topk, run

torch = pytest.importorskip("torch")
PER_TOKEN = DATA / "sglang" / "expert_distribution_recorder_1700000000.0_0.pt"
STAT = DATA / "sglang" / "expert_distribution_recorder_1700000001.0.pt"


def reference():
    return RoutingStats.from_paths(flame_topk()[flame_sequence() < 4], 64)


def test_per_token_dump_maps_physical_slots_and_drops_dense_layers_and_padding():
    s = read_stats(PER_TOKEN)
    assert s.layer_numbers == (2, 3, 4, 5, 6, 7, 8, 9) and s.num_experts == 64 and s.top_k == 6
    assert s.num_tokens == 256 and s.dropped_records == {}
    assert_same_counts(s, reference())
    assert np.array_equal(s.paths_TLK, flame_topk()[flame_sequence() < 4])
    assert s.provenance["mode"] == "per_token" and s.provenance["records"] == 2


def test_stat_dump_gives_loads_only():
    s = read_stats(STAT, ReadOptions(top_k=6))
    assert s.measured == ("load",) and s.layer_numbers == tuple(range(2, 10))
    assert np.array_equal(s.load_LE, reference().load_LE) and s.tokens_L.tolist() == [256] * 8
    assert not s.has("paths")


def test_stat_dump_needs_top_k(tmp_path, capsys):
    code, _, err = run(["stats", "build", str(STAT), "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{STAT}: logical_count holds loads only, not top-k: give --top-k or --model")


def test_load_only_statistics_plan_and_say_what_was_not_measured(tmp_path, capsys):
    code, out, err = run(["stats", "build", str(STAT), "--top-k", "6", "-o", str(tmp_path / "s.npz")], capsys)
    assert code == 0, err
    assert "co-activation and layer-to-layer traffic were not measured (load only)" in out
    code, out, err = run(["solve", "--model", "examples/flame-moe-290m.toml", "--nodes", "64", "--stats",
                          str(tmp_path / "s.npz"), "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    assert ("note: the statistics hold no co-activation or layer-to-layer traffic counts: co-activation and "
            "layer-to-layer traffic were not measured") in " ".join(out.split())
    plan = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert plan["stats"]["provenance"]["assumed_independent"] == ["coact", "trans", "trans_primary"]


def test_without_torch_the_error_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    code, _, err = run(["stats", "build", str(PER_TOKEN), "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{PER_TOKEN}: reading SGLang .pt dumps needs PyTorch, which is not installed: "
                 "pip install 'moeplace[runtime]'")


class Payload:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_a_dump_that_needs_pickled_code_is_refused(tmp_path, capsys):
    f = tmp_path / "evil.pt"
    torch.save({"records": [Payload()]}, f)
    code, out, err = run(["stats", "build", str(f), "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{f}: needs arbitrary pickled Python objects to load, which moeplace never loads "
                 "(torch.load with weights_only=True refused it)")
    assert "would run" not in out


def test_truncated_and_negative_ids(tmp_path, capsys):
    f = tmp_path / "cut.pt"
    f.write_bytes(PER_TOKEN.read_bytes()[:5000])
    code, _, err = run(["stats", "build", str(f), "-o", str(tmp_path / "s.npz")], capsys)
    assert code == 2 and err.startswith(f"error: {f}: not a readable .pt file, truncated or corrupt (")
    ids = torch.full((2, 3, 2), -1, dtype=torch.int32)
    ids[0, :, :] = torch.tensor([[0, 1], [2, 3], [1, -5]])
    torch.save({"records": [{"topk_ids_of_layer": ids}]}, tmp_path / "neg.pt")
    code, _, err = run(["stats", "build", str(tmp_path / "neg.pt"), "--num-experts", "4", "-o",
                        str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{tmp_path / 'neg.pt'}: records[0].topk_ids_of_layer: expert id -5 at token 2, "
                 "layer 0, choice 1 outside 0..3")


def test_per_pass_records_and_running_sum_stat_dumps_give_loads():
    per_pass = read_stats(DATA / "sglang" / "expert_distribution_recorder_1700000002.0_0.pt", ReadOptions(top_k=6))
    running = read_stats(DATA / "sglang" / "expert_distribution_recorder_1700000003.0.pt", ReadOptions(top_k=6))
    for s in (per_pass, running):
        assert s.measured == ("load",) and s.layer_numbers == tuple(range(2, 10))
        assert np.array_equal(s.load_LE, reference().load_LE) and s.num_tokens == 256
    assert per_pass.provenance["mode"] == "per_pass" and per_pass.provenance["records"] == 2


def test_per_pass_count_of_the_wrong_shape_names_the_record(tmp_path, capsys):
    p2l = torch.zeros((3, 4), dtype=torch.int64)
    torch.save({"records": [{"global_physical_count": torch.ones((3, 4), dtype=torch.int32)},
                            {"global_physical_count": torch.ones((3, 5), dtype=torch.int32)}],
                "last_physical_to_logical_map": p2l}, tmp_path / "pp.pt")
    code, _, err = run(["stats", "build", str(tmp_path / "pp.pt"), "--top-k", "1", "-o", str(tmp_path / "s.npz")],
                       capsys)
    assert_error(code, err, f"{tmp_path / 'pp.pt'}: records[1].global_physical_count: shape (3, 5) does not match "
                 "last_physical_to_logical_map (3, 4)")


def _split_ranks(d, dump, records):
    """One dump per rank: record r of the sample goes to rank r (data-parallel ranks route their own tokens)."""
    d.mkdir()
    for r, rec in enumerate(records):
        torch.save({"records": [rec], "last_physical_to_logical_map": dump["last_physical_to_logical_map"]},
                   d / f"expert_distribution_recorder_1700000000.0_{r}.pt")


def test_directory_of_per_rank_dumps_is_their_sum(tmp_path):
    dump = torch.load(PER_TOKEN, weights_only=True)
    _split_ranks(tmp_path / "ranks", dump, dump["records"])
    s = read_stats(tmp_path / "ranks")
    assert s.num_tokens == 256 and s.dropped_records == {}
    assert_same_counts(s, reference())
    assert s.provenance["format"] == "sglang" and s.provenance["mode"] == "per_token" and s.provenance["files"] == 2
    passes = [{k: v for k, v in r.items() if k != "topk_ids_of_layer"} for r in
              torch.load(DATA / "sglang" / "expert_distribution_recorder_1700000002.0_0.pt", weights_only=True)["records"]]
    _split_ranks(tmp_path / "passes", dump, passes)
    loads = read_stats(tmp_path / "passes", ReadOptions(top_k=6))
    assert loads.measured == ("load",) and np.array_equal(loads.load_LE, reference().load_LE)


def test_directory_with_a_stat_dump_beside_rank_dumps_is_refused(tmp_path, capsys):
    d = tmp_path / "dumps"
    d.mkdir()
    for f in (PER_TOKEN, STAT):
        (d / f.name).write_bytes(f.read_bytes())
    code, _, err = run(["stats", "build", str(d), "--top-k", "6", "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{d}: a stat-mode dump (already summed over ranks) beside per-rank dumps "
                 f"({STAT.name}, {PER_TOKEN.name}): they would count the same tokens twice; give one of them")
