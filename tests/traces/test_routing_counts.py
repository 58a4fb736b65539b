"""Routing-analysis counts (OLMoE/Mixtral): rank-aligned transitions between non-adjacent layers."""

from __future__ import annotations

import numpy as np

from moeplace.traces.measures import measure
from moeplace.traces.read import read_stats
from tests.traces.helpers import DATA, assert_error, run


def test_olmoe_counts():
    s = read_stats(DATA / "olmoe" / "olmoe-1b-7b_c4.npz")
    z = np.load(DATA / "olmoe" / "olmoe-1b-7b_c4.npz")
    assert s.layer_numbers == (0, 7, 15) and s.top_k == 8 and s.num_experts == 64
    assert s.measured == ("load", "trans") and s.trans_pairing == "rank"
    assert s.num_tokens == 208_896 and s.trans_tokens_L1.tolist() == [208_896] * 2
    assert np.array_equal(s.trans_LEE, z["cross"])
    m = measure(s)
    assert m.lift_method.startswith("in-sample") and np.isnan(m.coact_lift).all()
    assert 0 < m.affinity_lift[0] < 0.2


def test_rank_pairs_cannot_plan(tmp_path, capsys):
    code, _, err = run(["stats", "build", str(DATA / "olmoe" / "mixtral-8x7b-v0.1_c4.npz"), "-o",
                        str(tmp_path / "m.npz")], capsys)
    assert code == 0, err
    from moeplace.traces.stats import RoutingStats

    s = RoutingStats.load(tmp_path / "m.npz")
    assert s.trans_pairing == "rank" and s.measured == ("load", "trans")
    code, _, err = run(["evaluate", "nowhere", "--stats", str(tmp_path / "m.npz")], capsys)
    assert code == 2


def test_pairs_must_be_the_recorded_layers(tmp_path, capsys):
    z = dict(np.load(DATA / "olmoe" / "mixtral-8x7b-v0.1_c4.npz"))
    z["cross_layer_pairs"] = np.array([[0, 15], [7, 15]])
    np.savez(tmp_path / "x.npz", **z)
    code, _, err = run(["stats", "show", str(tmp_path / "x.npz")], capsys)
    assert_error(code, err, f"{tmp_path / 'x.npz'}: cross_layer_pairs: layer pairs [(0, 15), (7, 15)] are not the "
                 "consecutive recorded layers [(0, 7), (7, 15)]")
