"""`placement/builder.py` front half: capacity checked first, clusters sized by their own files, top-k traces
with -1 and load-only statistics planned (issue 16 parts 2, 3, 4)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import moeplace
from moeplace.errors import InputError
from moeplace.placement.builder import ASSUMED_NOTE, check_capacity, load_stats
from moeplace.traces.counts import assume_independent
from moeplace.placement.presets import load_cluster, load_model
from moeplace.traces.stats import RoutingStats
from tests.conftest import REPO
from tests.conftest import run_cli as run

TINY = str(REPO / "examples" / "tiny.toml")


def conf(tmp_path, hosts: int, per_leaf: int = 8) -> str:
    lines = [f"SwitchName=leaf{i // per_leaf + 1} Nodes=h[{i + 1:03d}-{i + per_leaf:03d}]"
             for i in range(0, hosts, per_leaf)]
    lines.append(f"SwitchName=spine Switches=leaf[1-{hosts // per_leaf}]")
    p = tmp_path / "site.topology.conf"
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def no_statistics(monkeypatch):
    """Building statistics or reading a trace's rows fails the test: the refusal must come before."""
    def boom(*a, **k):
        raise AssertionError("statistics were built before the capacity check")

    monkeypatch.setattr("moeplace.traces.synth.synthesize", boom)
    monkeypatch.setattr("moeplace.traces.read.read_stats", boom)
    monkeypatch.setattr("moeplace.traces.arrays.add_rows", boom)


# -- part 3: capacity first -------------------------------------------------------------------------------


def test_check_capacity_says_what_fits():
    check_capacity(load_model(None), load_cluster(None))
    with pytest.raises(InputError) as err:
        check_capacity(load_model("deepseek-v3"), load_cluster(None))
    assert str(err.value) == ("cluster: 256 experts x 58 MoE layers = 14,848 experts do not fit 232 nodes x 8 GPUs x "
                              "1 experts per GPU = 1,856 slots: --experts-per-gpu 8 fits them, or --nodes 1856")
    with pytest.raises(InputError) as err:
        check_capacity(load_model(TINY), load_cluster(None, num_nodes=2), nodes_from="site.conf")
    assert str(err.value) == ("site.conf: 8 experts x 4 MoE layers = 32 experts do not fit 2 nodes x 8 GPUs x 1 "
                              "experts per GPU = 16 slots: --experts-per-gpu 2 fits them on its 2 hosts, or a fabric "
                              "of 4 nodes")
    with pytest.raises(InputError, match="^--replicas: 4 replicas need 4 spare GPUs"):
        check_capacity(load_model(TINY), load_cluster(None, num_nodes=4, experts_per_gpu=1), replicas=4)


def test_deepseek_on_the_seed_cluster_refused_before_any_statistics(tmp_path, capsys, monkeypatch):
    no_statistics(monkeypatch)
    code, out, err = run(["solve", "--model", "deepseek-v3", "--out", str(tmp_path / "p")], capsys)
    assert (code, out) == (2, "")
    assert err == ("error: cluster: 256 experts x 58 MoE layers = 14,848 experts do not fit 232 nodes x 8 GPUs x 1 "
                   "experts per GPU = 1,856 slots: --experts-per-gpu 8 fits them, or --nodes 1856\n")
    assert not (tmp_path / "p").exists()
    with pytest.raises(InputError, match="14,848 experts do not fit"):
        moeplace.solve(model="deepseek-v3")


def test_a_trace_is_not_read_past_its_header_before_the_request_fits(tmp_path, capsys, monkeypatch):
    np.savez(tmp_path / "t.npz", topk=np.zeros((4, 58, 8), np.int32))
    no_statistics(monkeypatch)
    code, _, err = run(["solve", "--model", "deepseek-v3", "--stats", str(tmp_path / "t.npz"), "--out",
                        str(tmp_path / "p")], capsys)
    assert code == 2 and "14,848 experts do not fit" in err
    code, _, err = run(["solve", "--model", TINY, "--nodes", "4", "--stats", str(tmp_path / "t.npz"), "--out",
                        str(tmp_path / "p")], capsys)
    assert err == f"error: {tmp_path / 't.npz'}: topk: 58 MoE layers, the model has 4\n"


# -- part 2: clusters sized by their files ----------------------------------------------------------------


def test_a_topology_conf_sizes_the_cluster(tmp_path, capsys):
    topo = conf(tmp_path, 32)
    code, out, err = run(["topology", "show", "--topology", topo, "--json", "--no-bisection"], capsys)
    assert code == 0, err
    assert (json.loads(out)["nodes"], json.loads(out)["gpus"]) == (32, 256)
    code, out, err = run(["solve", "--topology", topo, "--model", "mixtral-8x7b", "--work-limit", "2000",
                          "--no-emit", "--json", "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    assert (json.loads(out)["gpus"], json.loads(out)["items"]) == (256, 256)


def test_a_file_too_small_says_what_fits(tmp_path, capsys):
    topo = conf(tmp_path, 2, per_leaf=2)
    code, out, err = run(["solve", "--topology", topo, "--model", TINY, "--out", str(tmp_path / "p")], capsys)
    assert (code, out) == (2, "")
    assert err == (f"error: {topo}: 8 experts x 4 MoE layers = 32 experts do not fit 2 nodes x 8 GPUs x 1 experts "
                   f"per GPU = 16 slots: --experts-per-gpu 2 fits them on its 2 hosts, or a fabric of 4 nodes\n")
    code, out, err = run(["solve", "--topology", topo, "--model", TINY, "--experts-per-gpu", "2", "--work-limit",
                          "500", "--no-emit", "--json", "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    assert json.loads(out)["gpus"] == 16
    code, _, err = run(["solve", "--topology", topo, "--model", TINY, "--nodes", "4", "--out", str(tmp_path / "q")],
                       capsys)
    assert err == (f"error: {topo}: names 2 hosts and the cluster has 4 nodes: give --nodes 2, or pick 4 of them "
                   "with --hosts\n")


# -- part 4: top-k with -1, load-only statistics ----------------------------------------------------------


def test_topk_with_missing_records_plans_and_evaluates(tmp_path, capsys):
    rng = np.random.default_rng(0)
    topk = np.stack([np.stack([rng.permutation(8)[:2] for _ in range(4)]) for _ in range(300)]).astype(np.int32)
    topk[166, 3] = -1                                   # token 166 has no record at MoE layer 3
    topk[7, 0] = -1
    np.savez(tmp_path / "t.npz", topk=topk)
    code, _, err = run(["solve", "--model", TINY, "--nodes", "4", "--stats", str(tmp_path / "t.npz"), "--work-limit",
                        "1000", "--no-emit", "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    code, out, err = run(["evaluate", str(tmp_path / "p"), "--trace", str(tmp_path / "t.npz"), "--json"], capsys)
    assert code == 0, err
    s = load_stats(str(tmp_path / "t.npz"), load_model(TINY))
    assert s.tokens_L.tolist() == [299, 300, 300, 299]
    assert s.paths_TLK.shape[0] == 298                  # the sample holds the tokens present at every layer


def test_load_only_statistics_are_completed_by_independent_routing(tmp_path):
    model = load_model(TINY)
    full = RoutingStats.from_paths(np.tile(np.array([[0, 1], [2, 3], [4, 5], [6, 7]]), (100, 1, 1)), 8)
    load_only = RoutingStats(load_LE=full.load_LE, coact_LEE=np.zeros_like(full.coact_LEE),
                             trans_LEE=np.zeros_like(full.trans_LEE), trans_primary_LEE=np.zeros_like(full.trans_LEE),
                             num_tokens=100, top_k=2, layer_numbers=model.moe_layer_numbers, measured=("load",))
    s, missing = assume_independent(load_only)
    assert missing == ["coact", "trans", "trans_primary"]
    assert s.coact_LEE[0, 0, 1] == 100 and s.coact_LEE[0, 0, 0] == 0      # experts 0 and 1: every token, together
    assert s.trans_LEE[0, 0, 2] == 100 and s.trans_primary_LEE[0, 0, 2] == 50
    load_only.save(tmp_path / "s.npz")
    got = load_stats(str(tmp_path / "s.npz"), model)
    assert got.provenance["assumed_independent"] == ["coact", "trans", "trans_primary"]
    assert np.array_equal(got.trans_LEE, s.trans_LEE)


def test_evaluate_on_load_only_statistics_says_so(tmp_path, capsys):
    model = load_model(TINY)
    full = RoutingStats.from_paths(np.tile(np.array([[0, 1], [2, 3], [4, 5], [6, 7]]), (100, 1, 1)), 8)
    RoutingStats(load_LE=full.load_LE, coact_LEE=np.zeros_like(full.coact_LEE), trans_LEE=np.zeros_like(full.trans_LEE),
                 trans_primary_LEE=np.zeros_like(full.trans_LEE), num_tokens=100, top_k=2,
                 layer_numbers=model.moe_layer_numbers, measured=("load",)).save(tmp_path / "s.npz")
    code, out, err = run(["solve", "--model", TINY, "--nodes", "4", "--stats", str(tmp_path / "s.npz"), "--work-limit",
                          "500", "--no-emit", "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    assert ("note: the statistics hold no co-activation or layer-to-layer traffic counts: co-activation and "
            "layer-to-layer traffic were not measured") in " ".join(out.split())
    code, out, err = run(["evaluate", str(tmp_path / "p"), "--stats", str(tmp_path / "s.npz")], capsys)
    assert code == 0, err
    assert f"scored on statistics {tmp_path / 's.npz'} (load only: {ASSUMED_NOTE})" in " ".join(out.split())


def test_an_ibnetdiscover_file_sizes_the_cluster_by_its_gpu_hosts(tmp_path, capsys):
    ib = str(REPO / "tests" / "data" / "topologies" / "rail-hdr-24.ibnetdiscover")   # 24 GPU hosts and login01
    code, out, err = run(["topology", "show", "--topology", ib, "--json", "--no-bisection"], capsys)
    assert code == 0, err
    assert json.loads(out)["nodes"] == 24
    code, out, err = run(["solve", "--topology", ib, "--out", str(tmp_path / "p")], capsys)
    assert err == (f"error: {ib}: 32 experts x 58 MoE layers = 1,856 experts do not fit 24 nodes x 8 GPUs x 1 experts "
                   "per GPU = 192 slots: --experts-per-gpu 10 fits them on its 24 hosts, or a fabric of 232 nodes\n")
    code, out, err = run(["solve", "--topology", ib, "--model", TINY, "--work-limit", "500", "--no-emit", "--json",
                          "--out", str(tmp_path / "q")], capsys)
    assert code == 0, err
    assert json.loads(out)["topology"].endswith("(using 24 of its 25 hosts)")


def test_compare_refuses_before_any_statistics(tmp_path, capsys, monkeypatch):
    no_statistics(monkeypatch)
    code, _, err = run(["compare", "--model", "deepseek-v3", "--out", str(tmp_path / "c")], capsys)
    assert code == 2
    assert err == ("error: cluster: 256 experts x 58 MoE layers = 14,848 experts do not fit 232 nodes x 8 GPUs x 1 "
                   "experts per GPU = 1,856 slots: the expert-per-GPU design needs 1856 nodes: leave 1 out of "
                   "--experts-per-gpu\n")
