"""Profiles and calibrated synthesis: depth interpolation, convergence, presets equal fresh fits."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.errors import InputError
from moeplace.traces.fit import depth_profile, fit_synthesize
from moeplace.traces.measures import measure
from moeplace.traces.profile import load_preset, preset_names, profile_of, read_profile
from moeplace.traces.read import read_stats
from tests.conftest import shared_routing_dir
from tests.traces.helpers import DATA, FLAME_NPZ


def test_depth_profile_interpolates_and_keeps_the_mean():
    out = depth_profile((0.1, 0.3), 5)
    assert out.mean() == pytest.approx(0.2)
    assert np.allclose(out, [0.1, 0.15, 0.2, 0.25, 0.3])
    out = depth_profile((0.1, 0.2, 0.6), 4)          # interpolation alone would give mean 0.2667
    assert out.mean() == pytest.approx(0.3) and (np.diff(out) > 0).all()
    assert depth_profile((0.4,), 3).tolist() == [0.4, 0.4, 0.4]


def test_fit_to_a_small_shape_matches_every_fitted_measure_on_average():
    prof = profile_of(read_stats(FLAME_NPZ), "flame-512", "test")
    s, report = fit_synthesize(prof, 6, 16, 2, num_tokens=4000, seed=3)
    m = measure(s)
    # per layer, 16 experts x 4,000 tokens leave ~0.03 of sampling noise in a lift: small targets miss by more
    assert report.worst_relative_error < 0.35
    src = prof.summary
    for name in ("load_cv", "coact_lift", "affinity_lift"):
        assert m.summary()[name] == pytest.approx(src[name], rel=0.05), name
    assert s.provenance["like"] == "flame-512" and s.provenance["source"] == "synthetic"
    assert len(s.provenance["skew"]) == 6 and len(s.provenance["affinity"]) == 5


def test_fit_is_deterministic():
    prof = load_preset("mixtral-8x7b-c4")
    a, _ = fit_synthesize(prof, 4, 8, 2, num_tokens=1000, seed=1)
    b, _ = fit_synthesize(prof, 4, 8, 2, num_tokens=1000, seed=1)
    assert np.array_equal(a.paths_TLK, b.paths_TLK) and a.provenance == b.provenance


@pytest.mark.parametrize("name,path", [("olmoe-1b-7b-c4", DATA / "olmoe" / "olmoe-1b-7b_c4.npz"),
                                       ("mixtral-8x7b-c4", DATA / "olmoe" / "mixtral-8x7b-v0.1_c4.npz")])
def test_shipped_presets_equal_a_fresh_fit_of_their_data(name, path):
    fresh = profile_of(read_stats(path), name, path.name, load_preset(name).notes)
    assert fresh == load_preset(name)


def test_flame_preset_equals_a_fresh_fit_of_the_shared_trace():
    path = shared_routing_dir() / "flame-moe-290m" / "encoder_2048tok.npz"
    if not path.is_file():
        pytest.skip("shared FLAME trace not present")
    assert profile_of(read_stats(path), "flame-moe-290m", path.name, load_preset("flame-moe-290m").notes) == \
        load_preset("flame-moe-290m")


def test_every_preset_loads():
    names = preset_names()
    assert len(names) == 12 and "flame-moe-290m" in names
    for n in names:
        p = load_preset(n)
        assert p.name == n and len(p.load_cv) == p.num_layers


def test_a_bad_profile_file(tmp_path):
    f = tmp_path / "p.profile.json"
    f.write_text('{"name": "x", "source": "y", "num_layers": 2, "num_experts": 4, "top_k": 2, "num_tokens": 1, '
                 '"layer_numbers": [0, 1], "lift_method": "m", "load_cv": [0.1]}')
    with pytest.raises(InputError) as exc:
        read_profile(f)
    assert str(exc.value) == f"{f}: profile: Value error, layer_numbers and load_cv need 2 values"
