"""The cost model's transfers use the objective's accounting: tiers, dedup and totals agree with it."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.costmodel.transfers import chain_with_attention, flow_transfers, tp_allreduce_transfers
from moeplace.placement.cost import evaluate
from moeplace.topologies.base import TIER_LEAF, TIER_NVLINK
from moeplace.traces.synth import synthesize
from tests.costmodel import cases


def _chain(item_gpu, dense=0):
    m = cases.model(num_moe_layers=3, num_experts=4, top_k=2, dense=dense)
    st = synthesize(3, 4, 2, num_tokens=400, seed=5)
    return cases.deployment(m, cases.cluster(3, 4), st, "chain", item_gpu)


PLACEMENT = [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]


def _consistent(tr):
    """Every network crossing is charged once to a sender and once to a receiver, and routed as a flow."""
    network = tr.bytes_SLT[:, :, TIER_LEAF:].sum()
    assert tr.egress_SLN.sum() == pytest.approx(network)
    assert tr.ingress_SLN.sum() == pytest.approx(network)
    assert tr.flow_bytes_F.sum() == pytest.approx(network)
    assert tr.node_NN.sum() == pytest.approx(network)
    assert np.all(np.diag(tr.node_NN) == 0)


def test_flow_transfers_are_the_objective():
    dep = _chain(PLACEMENT)
    tr = flow_transfers(dep.problem, dep.item_gpu_I)
    cost = evaluate(dep.problem, dep.item_gpu_I)
    np.testing.assert_allclose(tr.bytes_by_tier, cost.bytes_by_tier)
    for k, name in enumerate(tr.steps):
        assert tr.bytes_SLT[k].sum() == pytest.approx(cost.bytes_by_kind[name])
    _consistent(tr)


def test_chain_with_attention_keeps_the_combine_and_adds_the_detour():
    dep = _chain(PLACEMENT)
    tr = chain_with_attention(dep.problem, dep.item_gpu_I, dep.stats)
    cost = evaluate(dep.problem, dep.item_gpu_I)
    B = dep.problem.model.token_bytes
    assert tr.bytes_SLT[tr.steps.index("combine")].sum() == pytest.approx(cost.bytes_by_kind["combine"])
    # one return per token per layer boundary (2 of them) and one output hop, each one vector
    assert tr.bytes_SLT[tr.steps.index("return")].sum() == pytest.approx(2 * B)
    assert tr.bytes_SLT[tr.steps.index("output")].sum() == pytest.approx(B)
    # a dispatch reaches both experts: at most two vectors per token and layer, at least one
    d = tr.bytes_SLT[tr.steps.index("dispatch")].sum(axis=1)
    assert np.all(d <= 2 * B + 1e-6) and np.all(d >= B - 1e-6)
    assert tr.bytes_SLT[tr.steps.index("dense")].sum() == 0.0
    _consistent(tr)


def test_one_node_per_stage_keeps_the_dispatch_inside_the_node():
    """Layer l's 4 experts all on node l: dispatch and combine stay on NVLink; only the hops between
    stages (return, output) cross nodes, one vector each."""
    dep = _chain(list(range(12)))
    tr = chain_with_attention(dep.problem, dep.item_gpu_I, dep.stats)
    B = dep.problem.model.token_bytes
    for step in ("dispatch", "combine"):
        assert tr.bytes_SLT[tr.steps.index(step), :, TIER_LEAF:].sum() == 0.0
    assert tr.cross_node_bytes == pytest.approx(3 * B)
    _consistent(tr)


def test_spread_dense_layers_hop_between_their_stages():
    dep = _chain(PLACEMENT, dense=2)
    tr = chain_with_attention(dep.problem, dep.item_gpu_I, dep.stats, dense_stage_D=np.array([0, 1]))
    B = dep.problem.model.token_bytes
    # stage 0 -> stage 1 (dense layer 2) -> stage 0 (first MoE layer): two vectors per token
    assert tr.bytes_SLT[tr.steps.index("dense")].sum() == pytest.approx(2 * B)
    same = chain_with_attention(dep.problem, dep.item_gpu_I, dep.stats, dense_stage_D=np.array([0, 0]))
    assert same.bytes_SLT[same.steps.index("dense")].sum() == 0.0


def test_prefill_drops_the_output_hop():
    dep = _chain(PLACEMENT)
    tr = chain_with_attention(dep.problem, dep.item_gpu_I, dep.stats)
    pre = tr.scaled_step("output", 0.0)
    assert pre.bytes_SLT[pre.steps.index("output")].sum() == 0.0
    assert pre.cross_node_bytes < tr.cross_node_bytes
    _consistent(pre)


def test_tensor_parallel_all_reduces():
    m = cases.model(num_moe_layers=2, num_experts=4, top_k=2)
    st = synthesize(2, 4, 2, num_tokens=100, seed=1)
    dep = cases.deployment(m, cases.cluster(1, 4, experts_per_gpu=2), st, "ep", [0, 1, 2, 3, 1, 0, 3, 2],
                           ep_attention="tp", balance=True)
    tr = tp_allreduce_transfers(dep.problem)
    # ring all-reduce: every GPU sends 2 (G - 1) / G vectors per token; 4 GPUs, 2 per layer, 2 layers
    assert tr.bytes_SLT[:, :, TIER_NVLINK].sum() == pytest.approx(2 * 2 * 2 * 3 * m.token_bytes)
    assert tr.cross_node_bytes == 0.0
