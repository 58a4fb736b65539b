"""Routing draws: the plan's statistics or a trace, seeded gates, replicas chosen by token id."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.errors import InputError
from moeplace.launch.manifest import RoutingSource
from moeplace.runmodel.workload import assign_ranks, draw_routing, gate_weights, rank_table
from tests.runtime.helpers import manifest


def test_gates_are_softmax_weights_in_gate_order():
    g = gate_weights((50, 3, 4), seed=2)
    np.testing.assert_allclose(g.sum(axis=2), 1.0, rtol=1e-6)
    assert (np.diff(g, axis=2) <= 0).all() and (g > 0).all()
    assert np.array_equal(g, gate_weights((50, 3, 4), seed=2))


def test_synthetic_draw_is_deterministic_and_distinct_per_step():
    m = manifest()
    a = draw_routing(m, 32, 2)
    b = draw_routing(m, 32, 2)
    assert np.array_equal(a[0].paths_TLK, b[0].paths_TLK)
    assert not np.array_equal(a[0].paths_TLK, a[1].paths_TLK)
    p = a[0].paths_TLK
    assert p.shape == (32, 2, 2) and (p[:, :, 0] != p[:, :, 1]).all()


def test_trace_replay_cycles_and_checks_the_model(tmp_path):
    topk = np.array([[[0, 1], [2, 3]], [[3, 2], [1, 0]], [[1, 2], [0, 3]]], dtype=np.int32)
    np.savez(tmp_path / "t.npz", topk=topk)
    m = manifest().model_copy(update={"routing": RoutingSource(kind="trace", trace_file="t.npz")})
    steps = draw_routing(m, 2, 2, base=tmp_path)
    assert steps[0].paths_TLK.tolist() == topk[:2].tolist()
    assert steps[1].paths_TLK.tolist() == [topk[2].tolist(), topk[0].tolist()]
    np.savez(tmp_path / "bad.npz", topk=np.full((2, 2, 2), 7, dtype=np.int32))
    bad = m.model_copy(update={"routing": RoutingSource(kind="trace", trace_file="bad.npz")})
    with pytest.raises(InputError, match="expert id 7 at token 0, MoE layer 0, choice 0 exceeds the model's 4 experts"):
        draw_routing(bad, 2, 1, base=tmp_path)


def test_replicas_alternate_by_token_id():
    m = manifest(placement=lambda ml, e: [e, (e + 2) % 4] if (ml, e) == (0, 1) else e)
    ranks, reps = rank_table(m)
    assert reps[0, 1] == 2 and ranks[0, 1, :2].tolist() == [1, 3]
    paths = np.array([[[1, 0], [0, 1]]] * 4, dtype=np.int32)
    r = assign_ranks(paths, ranks, reps, np.arange(4))
    assert r[:, 0, 0].tolist() == [1, 3, 1, 3]
    assert r[:, 1, 0].tolist() == [0, 0, 0, 0]


def test_an_unplaced_expert_is_refused():
    m = manifest(placement=lambda ml, e: [] if (ml, e) == (1, 3) else e)
    with pytest.raises(InputError, match="expert 3 of MoE layer 1 is on no rank"):
        rank_table(m)


@pytest.mark.parametrize("name, words", [
    ("../../../../etc/passwd", "no absolute path, no '..'"),
    ("/etc/passwd", "no absolute path, no '..'"),
    ("a/../../t.npz", "no '..'"),
    ("t\n.npz", "printable relative path"),
])
def test_a_manifest_trace_file_never_leaves_its_folder(tmp_path, name, words):
    """Issue 14: a worker manifest's trace_file of ../../../../etc/passwd was opened."""
    with pytest.raises(ValueError, match=words):
        RoutingSource(kind="trace", trace_file=name)
    m = manifest().model_copy(update={"routing": RoutingSource.model_construct(kind="trace", trace_file=name,
                                                                               seed=0, knobs={})})
    with pytest.raises(InputError, match=r"^manifest.json: routing.trace_file: .*" + words.replace(".", r"\.")):
        draw_routing(m, 2, 1, base=tmp_path)


def test_a_link_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "outside.npz"
    np.savez(outside, topk=np.zeros((2, 2, 2), dtype=np.int32))
    run = tmp_path / "run"
    run.mkdir()
    (run / "t.npz").symlink_to(outside)
    m = manifest().model_copy(update={"routing": RoutingSource(kind="trace", trace_file="t.npz")})
    with pytest.raises(InputError, match="leads out of the manifest's folder"):
        draw_routing(m, 2, 1, base=run)
