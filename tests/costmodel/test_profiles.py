"""Hardware-profile presets and calibrated profile files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moeplace.costmodel.compute import expert_us
from moeplace.costmodel.presets import BRIEF_H200_EXPERT_US, PROFILE_PRESETS, load_profile
from moeplace.errors import InputError
from moeplace.placement.presets import load_model


def test_presets_derive_from_the_cluster_presets():
    seed, h100 = PROFILE_PRESETS["seed"], PROFILE_PRESETS["h100-sxm"]
    assert seed.bf16_tflops == pytest.approx(400 * 0.71) and seed.peak_bf16_tflops == 400
    assert seed.hbm_tbps == pytest.approx(1.8 * 0.8) and seed.memory_gb == 64
    assert seed.nic_gbps_per_gpu == pytest.approx(25 * 0.8)          # HDR 200 Gb/s per GPU, 80%
    assert (seed.nvlink_latency_us, seed.network_latency_us, seed.transfer_floor_us) == (1.0, 3.0, 0.0)
    assert h100.bf16_tflops == pytest.approx(989 * 0.71) and h100.memory_gb == 80
    assert h100.hbm_tbps == pytest.approx(3.35 * 0.854, rel=1e-3)
    assert h100.transfer_floor_us == 24.0 and h100.nic_gbps_per_gpu == pytest.approx(50 * 0.95)
    for p in PROFILE_PRESETS.values():
        assert p.source == "preset" and p.derivation, p.name


def test_the_fitted_roofline_reproduces_the_measured_h200_expert_within_6_percent():
    """The H200 preset without its curve (the roofline alone) against the BRIEF's measured table."""
    model = load_model("seed")
    roof = PROFILE_PRESETS["h200"].model_copy(update={"expert_curve": []})
    n = np.array([t for t, _ in BRIEF_H200_EXPERT_US], dtype=float)
    measured = np.array([us for _, us in BRIEF_H200_EXPERT_US], dtype=float)
    err = expert_us(roof, model, n) / measured - 1
    assert np.abs(err).max() < 0.06, err


def test_a_measured_curve_is_used_where_it_matches_the_expert():
    model = load_model("seed")
    h200 = PROFILE_PRESETS["h200"]
    n = np.array([t for t, _ in BRIEF_H200_EXPERT_US], dtype=float)
    np.testing.assert_allclose(expert_us(h200, model, n), [us for _, us in BRIEF_H200_EXPERT_US])
    # flat below the first point, linear in tokens beyond the last, log-log in between
    assert expert_us(h200, model, np.array([4.0]))[0] == pytest.approx(40.0)
    assert expert_us(h200, model, np.array([16384.0]))[0] == pytest.approx(2 * 1102.0)
    assert 532 < expert_us(h200, model, np.array([6000.0]))[0] < 1102
    other = load_model("mixtral-8x7b")        # another expert shape: the roofline, not the curve
    assert expert_us(h200, other, np.array([16.0]))[0] != pytest.approx(40.0)


def test_a_calibrated_file_loads_and_bad_files_name_the_field(tmp_path):
    data = PROFILE_PRESETS["h100-sxm"].model_dump(mode="json")
    data.update(name="lab", source="calibrated", measured_at="2026-11-26T00:00:00Z")
    good = tmp_path / "hw.json"
    good.write_text(json.dumps(data))
    assert load_profile(str(good)).name == "lab"
    data["hbm_tbps"] = -1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError) as e:
        load_profile(str(bad))
    assert str(e.value) == f"{bad}: hbm_tbps: Input should be greater than 0 (got -1)"
    other = tmp_path / "plan.json"
    other.write_text(json.dumps({"format": "moeplace.plan"}))
    with pytest.raises(InputError, match="not a moeplace hardware profile"):
        load_profile(str(other))
    with pytest.raises(InputError) as e:
        load_profile("h900")
    assert str(e.value).startswith("--profile: unknown hardware profile 'h900' (known: seed, h100-sxm, h200")
