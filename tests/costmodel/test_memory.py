"""Memory per GPU: weights, KV cache, buffers and fit, by hand and on the seed model."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.costmodel.deployment import Deployment, Options, Workload
from moeplace.costmodel.memory import max_batch, memory
from moeplace.costmodel.presets import PROFILE_PRESETS
from moeplace.placement.builder import build_fabric, default_tier_costs
from moeplace.placement.flows import build_traffic
from moeplace.placement.presets import load_cluster, load_model
from moeplace.placement.problem import Problem
from moeplace.traces.synth import synthesize
from tests.costmodel import cases

GB = 1e9


def test_memory_by_hand():
    dep = cases.one_layer_two_gpus("ep")
    prof = cases.profile()
    mem = memory(prof, dep, Workload("decode", 4, 16), Options(overlap=False, reserve_gb=1.0), micro_tokens=4)
    # each GPU: one expert (3,145,728 B) + the one attention layer (8,388,608 B), DP attention
    np.testing.assert_allclose(mem.weights_G, [3_145_728 + 8_388_608] * 2)
    # 2 of the 4 sequences per home, 16 tokens of context, 4,096 B of K and V per token and layer
    np.testing.assert_allclose(mem.kv_G, [2 * 16 * 4096] * 2)
    # buffers: max(1/2 of the tokens (attention), 1/2 (one expert of 2, top-1)) x (4 x 1024 + 2 x 512) x 2 B
    np.testing.assert_allclose(mem.buffers_G, [2 * (4 * 1024 + 2 * 512) * 2] * 2)
    assert mem.limit_gb == 9.0 and mem.fits


def test_max_batch_is_the_last_batch_that_fits():
    dep = cases.one_layer_two_gpus("ep")
    prof = cases.profile(memory_gb=0.05)
    opts = Options(reserve_gb=0.0)
    w = Workload("decode", 1, 4096)
    best = max_batch(prof, dep, w, opts, lambda x: float(x.batch))
    assert best > 0
    assert memory(prof, dep, Workload("decode", best, 4096), opts, best).fits
    assert not memory(prof, dep, Workload("decode", best + 1, 4096), opts, best + 1).fits


@pytest.fixture(scope="module")
def seed_ep8():
    """The seed model as one EP group of 8 GPUs, 4 experts of every MoE layer per GPU."""
    m = load_model("seed")
    c = load_cluster("seed", num_nodes=1, gpus_per_node=8, experts_per_gpu=4 * 58)
    st = synthesize(58, 32, 2, num_tokens=256, seed=0)
    p = Problem(model=m, cluster=c, fabric=build_fabric(c), flow="ep", dedup=True, tier_costs=default_tier_costs(c),
                traffic=build_traffic("ep", st, m), balance_per_layer=True)
    item_gpu = (np.arange(m.num_items) % 32) // 4
    return p, item_gpu, st


@pytest.mark.parametrize("profile, fits", [("seed", False), ("h100-sxm", False), ("h200", True)])
def test_the_dp_attention_baseline_does_not_fit_64_or_80_gb(seed_ep8, profile, fits):
    p, item_gpu, st = seed_ep8
    dep = Deployment("ep8", p, item_gpu, st)
    mem = memory(PROFILE_PRESETS[profile], dep, Workload("decode", 8, 2048), Options(), micro_tokens=8)
    # 61 attention layers of 939.5 MB, 232 experts of 88.1 MB, 3 dense MLPs of 88.1 MB on every GPU
    weights = 61 * 939_524_096 + 232 * 88_080_384 + 3 * 88_080_384
    assert mem.weights_G.max() == weights
    # one sequence per GPU: 2,048 tokens x 61 layers x 65,536 B
    assert mem.kv_G.max() == 2048 * 61 * 65_536
    assert mem.max_gb == pytest.approx(86.2, abs=0.1)
    assert mem.fits is fits


def test_tensor_parallel_attention_splits_attention_and_kv(seed_ep8):
    p, item_gpu, st = seed_ep8
    dep = Deployment("ep8 tp", p, item_gpu, st, ep_attention="tp")
    mem = memory(PROFILE_PRESETS["h100-sxm"], dep, Workload("decode", 8, 2048), Options(), micro_tokens=8)
    assert mem.weights_G.max() == pytest.approx(61 * 939_524_096 / 8 + 232 * 88_080_384 + 3 * 88_080_384 / 8)
    assert mem.kv_G.max() == pytest.approx(8 * 2048 * 61 * 65_536 / 8)
    assert mem.fits
