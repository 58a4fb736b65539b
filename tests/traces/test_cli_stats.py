"""`moeplace stats` end to end, and held-out evaluation on traces of every format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moeplace.traces.stats import RoutingStats
from tests.conftest import REPO, shared_routing_dir
from tests.traces.helpers import DATA, FLAME_JSONL, FLAME_NPZ, assert_error, assert_same_counts, run

FLAME_MODEL = str(REPO / "examples" / "flame-moe-290m.toml")


def test_build_merges_files_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "s.npz"
    code, text, err = run(["stats", "build", str(FLAME_JSONL), str(FLAME_NPZ), "--model", FLAME_MODEL, "-o",
                           str(out)], capsys)
    assert code == 0, err
    assert "1,024 tokens, 8 layers (2..9), 64 experts, top-6" in text and f"wrote {out}" in text
    s = RoutingStats.load(out)
    assert s.num_tokens == 1024 and s.provenance["source"] == "merged" and len(s.provenance["parts"]) == 2
    code, _, err = run(["stats", "build", str(FLAME_NPZ), "-o", str(out)], capsys)
    assert_error(code, err, f"{out}: exists (use --force to replace it)")
    code, _, err = run(["stats", "build", str(FLAME_NPZ), "-o", str(out), "--force", "--json", "--keep-paths", "all"],
                       capsys)
    assert code == 0 and RoutingStats.load(out).num_tokens == 512


def test_build_checks_the_model(tmp_path, capsys):
    out = str(tmp_path / "s.npz")
    code, _, err = run(["stats", "build", str(FLAME_NPZ), "--model", "seed", "-o", out], capsys)
    assert_error(code, err, f"{FLAME_NPZ}: topk: expert id 34 at token 0, layer 0, choice 0 outside 0..31")
    code, _, err = run(["stats", "build", str(FLAME_NPZ), "--model", "mixtral-8x7b", "--num-experts", "64", "-o", out],
                       capsys)
    assert_error(code, err, f"{FLAME_NPZ}: load: 64 experts per layer, the model has 8")


def test_show_prints_per_layer_measures_and_writes_heatmaps(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    code, text, err = run(["stats", "show", str(FLAME_NPZ), "--plots", str(tmp_path / "plots"), "--csv",
                           str(tmp_path / "c.csv")], capsys)
    assert code == 0, err
    for word in ("max/mean", "entropy", "skew (CV)", "coact lift", "affinity lift", "mean over layers"):
        assert word in text
    for name in ("load.png", "coact.png", "trans.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "coact.png (all 8 layers)" in text and "trans.png (all 7 layer pairs)" in text
    code, text, _ = run(["stats", "show", str(tmp_path / "c.csv"), "--json"], capsys)
    data = json.loads(text)
    assert data["num_tokens"] == 512 and len(data["measures"]["load_cv"]) == 8
    code, _, err = run(["stats", "show", str(FLAME_NPZ), "--plots", str(tmp_path / "plots")], capsys)
    assert_error(code, err, f"{tmp_path / 'plots'}: output directory exists and is not empty (use --force to "
                 "replace it)")


def test_diff_of_a_workload_with_itself_and_with_another(tmp_path, capsys):
    z = np.load(FLAME_NPZ)
    np.savez(tmp_path / "a.npz", topk=z["topk"][z["sequence"] < 4], num_experts=64)
    np.savez(tmp_path / "b.npz", topk=z["topk"][z["sequence"] >= 4], num_experts=64)
    code, text, err = run(["stats", "diff", str(tmp_path / "a.npz"), str(tmp_path / "a.npz"), "--json"], capsys)
    assert code == 0, err
    d = json.loads(text)
    assert d["summary"]["load_tv_max"] == 0 and d["summary"]["trans_tv_max"] == 0
    code, text, _ = run(["stats", "diff", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--json"], capsys)
    d = json.loads(text)
    assert 0 < d["summary"]["load_tv_mean"] < 1 and len(d["per_transition"]["trans_tv"]) == 7
    code, text, _ = run(["stats", "diff", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")], capsys)
    assert "load TV" in text and "trans TV (to next)" in text and "affinity_lift" in text


def test_synth_like_a_preset_and_errors(tmp_path, capsys):
    out = tmp_path / "m.npz"
    code, text, err = run(["stats", "synth", "--like", "mixtral-8x7b-c4", "--model", "mixtral-8x7b", "--tokens",
                           "2000", "-o", str(out)], capsys)
    assert code == 0, err
    assert "fitted mixtral-8x7b-c4" in text and f"wrote {out}" in text
    s = RoutingStats.load(out)
    assert (s.num_moe_layers, s.num_experts, s.top_k) == (32, 8, 2) and s.provenance["like"] == "mixtral-8x7b-c4"
    code, _, err = run(["stats", "synth", "--like", "nope", "--model", "seed", "-o", str(tmp_path / "x.npz")], capsys)
    assert code == 2 and err.startswith("error: nope: --like: neither a file nor a profile preset (presets: ")


@pytest.mark.slow
def test_synth_like_flame_gives_seed_statistics_within_ten_percent(tmp_path, capsys):
    """The issue's acceptance check: FLAME (64 x 8, top-6) -> seed (32 x 58, top-2), compared by `stats show`."""
    src = shared_routing_dir() / "flame-moe-290m" / "encoder_2048tok.npz"
    if not src.is_file():
        pytest.skip("shared FLAME trace not present")
    out = tmp_path / "seed-like-flame.npz"
    code, _, err = run(["stats", "synth", "--like", str(src), "--model", "seed", "-o", str(out)], capsys)
    assert code == 0, err
    shown = {}
    for path in (src, out):
        code, text, err = run(["stats", "show", str(path), "--json"], capsys)
        assert code == 0, err
        shown[path] = json.loads(text)
    a, b = shown[src], shown[out]
    assert (b["num_experts"], len(b["layers"]), b["top_k"]) == (32, 58, 2)
    for name in ("load_cv", "affinity_lift", "coact_lift"):
        x, y = a["measures"]["summary"][name], b["measures"]["summary"][name]
        assert abs(y / x - 1) < 0.10, (name, x, y)


@pytest.mark.parametrize("held_out", [
    "sglang/expert_distribution_recorder_1700000000.0_0.pt", "trtllm", "flame-moe-290m/encoder_512tok.jsonl"])
def test_plan_on_one_workload_and_score_on_another(tmp_path, capsys, held_out):
    if held_out.endswith(".pt"):
        pytest.importorskip("torch")
    z = np.load(FLAME_NPZ)
    lines = [json.dumps({"token": int(t), "layer": 2 + li, "experts": z["topk"][t, li].tolist()})
             for t in range(256, 512) for li in range(8)]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    code, _, err = run(["solve", "--model", FLAME_MODEL, "--nodes", "64", "--stats", str(tmp_path / "train.jsonl"),
                        "--solver", "greedy", "--work-limit", "500", "--no-emit", "--out", str(tmp_path / "p")],
                       capsys)
    assert code == 0, err
    code, text, err = run(["evaluate", str(tmp_path / "p"), "--trace", str(DATA / held_out), "--json"], capsys)
    assert code == 0, err
    m = json.loads(text)
    assert m["scored_on"] == f"trace {DATA / held_out}"
    assert 0 < m["metrics"]["pair_cross_node_share"] < 1
    plan = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert plan["stats"]["provenance"]["format"] == "jsonl"


def test_profile_command_round_trips(tmp_path, capsys):
    out = tmp_path / "flame.profile.json"
    code, text, err = run(["stats", "profile", str(FLAME_NPZ), "--name", "flame-512", "-o", str(out)], capsys)
    assert code == 0, err
    data = json.loads(out.read_text())
    assert data["name"] == "flame-512" and len(data["affinity_lift"]) == 7
    code, text, err = run(["stats", "synth", "--like", str(out), "--model", FLAME_MODEL, "--tokens", "1000", "-o",
                           str(tmp_path / "s.npz")], capsys)
    assert code == 0, err


def test_presets_command(capsys):
    code, text, _ = run(["stats", "presets"], capsys)
    assert code == 0 and "flame-moe-290m" in text and "olmoe-1b-7b-github" in text


def test_stats_files_and_traces_score_the_same(tmp_path, capsys):
    code, _, err = run(["stats", "build", str(FLAME_JSONL), "--num-experts", "64", "--keep-paths", "all", "-o",
                        str(tmp_path / "s.npz")], capsys)
    assert code == 0, err
    from moeplace.placement.builder import load_stats
    from moeplace.placement.presets import load_model

    model = load_model(FLAME_MODEL)
    a = load_stats(str(tmp_path / "s.npz"), model)
    b = load_stats(str(FLAME_JSONL), model)
    assert_same_counts(a, b)
    assert np.array_equal(a.paths_TLK, b.paths_TLK)


def test_build_is_byte_identical_whatever_the_jobs_and_chunks(tmp_path, capsys):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert run(["stats", "build", str(FLAME_JSONL), "--num-experts", "64", "--jobs", "1", "--keep-paths", "100",
                "-o", str(a)], capsys)[0] == 0
    assert run(["stats", "build", str(FLAME_JSONL), "--num-experts", "64", "--jobs", "2", "--chunk-mb", "0.05",
                "--keep-paths", "100", "-o", str(b)], capsys)[0] == 0
    assert a.read_bytes() == b.read_bytes()


def test_plots_say_how_many_layers_they_draw():
    from types import SimpleNamespace

    from moeplace.traces.plots import drawn

    seed = SimpleNamespace(num_moe_layers=58)
    assert drawn("coact.png", seed) == "8 of 58 layers (evenly spaced)"
    assert drawn("trans.png", seed) == "8 of 57 layer pairs (evenly spaced)"
    assert drawn("load.png", seed) == "all 58 layers"
