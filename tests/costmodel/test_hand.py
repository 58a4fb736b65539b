"""The cost model by hand: one MoE layer, two GPUs on two nodes, four tokens of which three choose expert 0.

Numbers (see cases.py): token 2,048 B; expert weights 3,145,728 B and 3,145,728 FLOPs per token; attention
weights 8,388,608 B and FLOPs per token, KV 4,096 B per token; profile 1 TB/s, 100 TFLOP/s, 10 GB/s per GPU
of network, 5 us network latency, 3 us floor per transfer step, 2 us per kernel block.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from moeplace.costmodel.comm import Rates, step_us
from moeplace.costmodel.compute import attention_us, expert_us, token_flops
from moeplace.costmodel.deployment import Options, Workload
from moeplace.costmodel.model import predict, prepare
from moeplace.costmodel.transfers import flow_transfers
from moeplace.placement.cost import evaluate
from moeplace.topologies.base import TIER_LEAF, TIER_SAME_GPU
from tests.costmodel import cases

NO_OVERLAP = Options(overlap=False)


def test_roofline_by_hand():
    prof, m = cases.profile(), cases.model()
    # 3 tokens: bytes 3,145,728 + 3 x 4,096 = 3,158,016 -> 3.158016 us at 1 TB/s; FLOPs 0.094 us; +2 us
    assert expert_us(prof, m, np.array([3.0]))[0] == pytest.approx(5.158016)
    assert expert_us(prof, m, np.array([0.0]))[0] == 0.0
    # attention, 2 decode tokens at context 16: 8,388,608 + 2 x 4,096 x 16 (KV) + 2 x 4,096 bytes
    assert attention_us(prof, m, np.array([2.0]), 16, "decode")[0] == pytest.approx(2 + 8.527872)
    # compute-bound: 100,000 tokens of one expert = 3.145728e11 FLOPs -> 3,145.728 us at 100 TFLOP/s
    assert expert_us(prof, m, np.array([1e5]))[0] == pytest.approx(2 + 3145.728)


def test_transfers_by_hand_match_the_objective():
    dep = cases.one_layer_two_gpus("ep")
    tr = flow_transfers(dep.problem, dep.item_gpu_I)
    cost = evaluate(dep.problem, dep.item_gpu_I)
    np.testing.assert_allclose(tr.bytes_by_tier, cost.bytes_by_tier)
    # home uniform over the 2 GPUs: half of every send crosses to the other node (leaf tier), half stays
    assert tr.bytes_by_tier[TIER_LEAF] == pytest.approx(2048.0)
    assert tr.bytes_by_tier[TIER_SAME_GPU] == pytest.approx(2048.0)
    d, c = tr.steps.index("dispatch"), tr.steps.index("combine")
    # dispatch: 1,536 B/token to expert 0 (node 0), 512 to expert 1 (node 1), each from the other node half the time
    np.testing.assert_allclose(tr.ingress_SLN[d, 0], [768, 256])
    np.testing.assert_allclose(tr.egress_SLN[d, 0], [256, 768])
    np.testing.assert_allclose(tr.egress_SLN[c, 0], [768, 256])
    np.testing.assert_allclose(tr.node_NN, [[0, 1024], [1024, 0]])
    assert tr.node_NN.sum() == pytest.approx(cost.cross_node_bytes)


def test_step_time_by_hand():
    dep = cases.one_layer_two_gpus("ep")
    prof = cases.profile()
    tr = flow_transfers(dep.problem, dep.item_gpu_I)
    # busiest node moves 768 B per token per step at 10,000 B/us; 4 tokens: 0.3072 us + 5 us + 3 us
    np.testing.assert_allclose(step_us(tr, Rates.of(prof, dep.problem), 4.0)[:, 0], [8.3072, 8.3072])


def test_prediction_by_hand():
    dep = cases.one_layer_two_gpus("ep")
    prof = cases.profile()
    p = predict(prepare(prof, dep, NO_OVERLAP, "decode"), Workload("decode", 4, 16))
    # attention: 2 sequences on the busiest home; experts: 3 tokens on GPU 0; transfers: two steps
    step = (2 + 8.527872) + 5.158016 + 2 * 8.3072
    assert p.latency_us == pytest.approx(step)
    assert p.tokens_per_s == pytest.approx(4 / step * 1e6)
    flops = (8_388_608 + 4 * 8 * 128 * 16) + 3_145_728
    assert token_flops(dep.problem.model, 16, "decode", 512) == flops
    assert p.mfu == pytest.approx(flops * p.tokens_per_s / (2 * 200e12))
    # network at the predicted rate: the busier direction of a node is 768 + 256 = 1,024 B per token
    assert p.peak_nic_util == pytest.approx(p.tokens_per_s * 1024 / 10e9, rel=1e-6)
    assert p.cross_node_bytes_per_token == pytest.approx(2048.0)


def test_replicas_multiply_throughput_not_latency():
    one = cases.one_layer_two_gpus("ep")
    prof = cases.profile()
    four = dataclasses.replace(one, instances=4)
    a = predict(prepare(prof, one, NO_OVERLAP, "decode"), Workload("decode", 4, 16))
    b = predict(prepare(prof, four, NO_OVERLAP, "decode"), Workload("decode", 16, 16))
    assert b.latency_us == pytest.approx(a.latency_us)
    assert b.tokens_per_s == pytest.approx(4 * a.tokens_per_s)
    assert b.gpus == 8 and b.tokens_per_s_per_gpu == pytest.approx(a.tokens_per_s_per_gpu)


def test_chain_pipeline_by_hand():
    """Two MoE layers of 2 experts, top-1, on one node of 4 GPUs; transfers made free, so the pipeline's
    arithmetic shows: pass = sum of stage times, tick = the busiest GPU, decode latency max(pass, M tick)."""
    m = cases.model(num_moe_layers=2)
    paths = np.array([[[0], [1]], [[0], [1]], [[0], [0]], [[1], [0]]])  # layer 0: 3 + 1, layer 1: 2 + 2
    dep = cases.deployment(m, cases.cluster(1, 4), cases.stats_from_paths(paths, 2), "chain", [0, 1, 2, 3])
    prof = cases.profile(nvlink_gbps=1e12, nvlink_latency_us=0.0, transfer_floor_us=0.0)
    for M, batch in ((1, 4), (2, 4), (4, 4)):
        p = predict(prepare(prof, dep, Options(micro_batches=M), "decode"), Workload("decode", batch, 16))
        b = batch // M
        att = float(attention_us(prof, m, np.array([np.ceil(b / 2)]), 16, "decode")[0])
        e = expert_us(prof, m, np.array([b * 0.75, b * 0.25, b * 0.5, b * 0.5]))
        stages = [att + max(e[0], e[1]), att + max(e[2], e[3])]
        assert p.micro_batches == M
        assert p.timing.pass_us == pytest.approx(sum(stages), rel=1e-6)
        assert p.timing.tick_us == pytest.approx(max(att + e), rel=1e-6)
        assert p.latency_us == pytest.approx(max(sum(stages), M * p.timing.tick_us), rel=1e-6)
        assert p.tokens_per_s == pytest.approx(batch / p.latency_us * 1e6)
