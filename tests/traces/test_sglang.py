"""SGLang expert-distribution dumps: per_token and stat modes, torch optional, no pickled code."""

from __future__ import annotations

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
    code, _, err = run(["stats", "build", str(STAT), "--top-k", "6", "-o", str(tmp_path / "s.npz")], capsys)
    assert code == 0, err
    code, out, err = run(["solve", "--model", "examples/flame-moe-290m.toml", "--nodes", "64", "--stats",
                          str(tmp_path / "s.npz"), "--work-limit", "2000", "--no-emit", "--out", str(tmp_path / "p")],
                         capsys)
    assert code == 0, err
    assert ("note: load-only statistics: co-activation and layer-to-layer traffic were not measured: planned on "
            "independent routing") in " ".join(out.split())


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
