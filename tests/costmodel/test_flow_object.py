"""The flow model is an object: a flow registered under a new name runs through the cost model and the
peers with nothing else edited, and behaves as the flow it copies."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from moeplace.costmodel.deployment import Options, Workload
from moeplace.costmodel.model import predict, prepare
from moeplace.peers.eplb import token_load_I
from moeplace.placement.flows import FLOWS, get_flow, register_flow
from tests.costmodel import cases


@pytest.fixture
def copies():
    names = []
    for base in ("chain", "ep"):
        names.append(register_flow(dataclasses.replace(get_flow(base), name=f"{base}-copy")).name)
    yield
    for name in names:
        FLOWS.pop(name)


def _deployments(flow: str):
    m = cases.model(num_moe_layers=2)
    paths = np.array([[[0], [1]], [[0], [1]], [[0], [0]], [[1], [0]]])
    stats = cases.stats_from_paths(paths, 2)
    return cases.deployment(m, cases.cluster(2, 2), stats, flow, [0, 1, 2, 3])


@pytest.mark.parametrize("base", ["chain", "ep"])
def test_a_copied_flow_predicts_and_balances_as_its_original(copies, base):
    prof = cases.profile()
    got, want = _deployments(f"{base}-copy"), _deployments(base)
    for phase in ("decode", "prefill"):
        a = predict(prepare(prof, got, Options(), phase), Workload(phase, 8, 64))
        b = predict(prepare(prof, want, Options(), phase), Workload(phase, 8, 64))
        assert (a.tokens_per_s, a.latency_us, a.micro_batches, a.bottleneck) == \
            (b.tokens_per_s, b.latency_us, b.micro_batches, b.bottleneck)
        np.testing.assert_array_equal(a.memory.total_G, b.memory.total_G)
        assert a.max_batch == b.max_batch
    np.testing.assert_array_equal(token_load_I(got.problem), token_load_I(want.problem))


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_flow(get_flow("chain"))


def test_what_differs_is_declared_by_each_flow():
    chain, ep = get_flow("chain"), get_flow("ep")
    assert (chain.pipelined, chain.collective, chain.balance_per_layer) == (True, "p2p", False)
    assert (ep.pipelined, ep.collective, ep.balance_per_layer, ep.tensor_parallel_attention) == \
        (False, "alltoall", True, True)
