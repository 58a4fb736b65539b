"""Monotonicity: more bandwidth or compute is never slower; more cross-node bytes are never faster."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from moeplace.costmodel.deployment import Options, Workload
from moeplace.costmodel.links import link_view
from moeplace.costmodel.model import predict, prepare
from moeplace.costmodel.transfers import Transfers
from moeplace.traces.synth import synthesize
from tests.costmodel import cases

WORKLOADS = [Workload("decode", 1, 256), Workload("decode", 8, 256), Workload("decode", 64, 1024),
             Workload("prefill", 1, 128), Workload("prefill", 16, 512)]
KNOBS = ("nic_gbps_per_gpu", "nvlink_gbps", "hbm_tbps", "bf16_tflops")


def _chain():
    """Two MoE layers x 4 experts, top-2, one expert per GPU on 2 nodes x 4 GPUs (a real cross-node chain)."""
    m = cases.model(num_moe_layers=2, num_experts=4, top_k=2)
    st = synthesize(2, 4, 2, num_tokens=512, seed=3)
    return cases.deployment(m, cases.cluster(2, 4), st, "chain", [0, 4, 1, 5, 2, 6, 3, 7])


def _ep():
    """The same model as one EP group of 4 GPUs across 2 nodes (one expert of every layer per GPU)."""
    m = cases.model(num_moe_layers=2, num_experts=4, top_k=2)
    st = synthesize(2, 4, 2, num_tokens=512, seed=3)
    return cases.deployment(m, cases.cluster(2, 2, experts_per_gpu=2), st, "ep", [0, 1, 2, 3, 1, 0, 3, 2],
                            balance=True)


@pytest.mark.parametrize("make", [_chain, _ep], ids=["chain", "ep"])
@pytest.mark.parametrize("overlap", [True, False])
@pytest.mark.parametrize("micro", [2, None], ids=["M2", "auto"])
@pytest.mark.parametrize("knob", KNOBS + ("all",))
def test_more_bandwidth_is_never_slower(make, overlap, micro, knob):
    """At a fixed number of micro-batches neither latency nor tokens/s gets worse; with the automatic
    choice (the most tokens/s) tokens/s never falls (latency may rise within the 1% tie window when a
    faster machine makes a deeper pipeline pay)."""
    dep = make()
    base = cases.profile()
    opts = Options(overlap=overlap, micro_batches=micro)
    prev: dict = {}
    for f in (1.0, 1.5, 3.0, 10.0):
        prof = cases.profile(**{k: getattr(base, k) * f for k in (KNOBS if knob == "all" else (knob,))})
        preps = {ph: prepare(prof, dep, opts, ph) for ph in ("decode", "prefill")}
        for i, w in enumerate(WORKLOADS):
            p = predict(preps[w.phase], w)
            if i in prev:
                if micro is not None:
                    assert p.latency_us <= prev[i].latency_us * (1 + 1e-9), (w, f)
                assert p.tokens_per_s >= prev[i].tokens_per_s * (1 - 1e-9), (w, f)
            prev[i] = p


def _more_network(tr: Transfers, f: float) -> Transfers:
    """The same transfers with every cross-node byte multiplied by f (NVLink and same-GPU bytes kept)."""
    b = tr.bytes_SLT.copy()
    b[:, :, 2:] *= f
    return dataclasses.replace(tr, bytes_SLT=b, egress_SLN=tr.egress_SLN * f, ingress_SLN=tr.ingress_SLN * f,
                               flow_bytes_F=tr.flow_bytes_F * f)


@pytest.mark.parametrize("make", [_chain, _ep], ids=["chain", "ep"])
def test_more_cross_node_bytes_are_never_faster(make):
    dep = make()
    prof = cases.profile()
    for w in WORKLOADS:
        prep = prepare(prof, dep, Options(micro_batches=2), w.phase)
        prev = None
        for f in (1.0, 1.2, 2.0, 8.0):
            tr = _more_network(prep.transfers, f)
            p = predict(dataclasses.replace(prep, transfers=tr, links=link_view(prof, dep.problem, tr)), w)
            assert p.cross_node_bytes_per_token == pytest.approx(prep.transfers.cross_node_bytes * f)
            if prev is not None:
                assert p.latency_us >= prev.latency_us * (1 - 1e-9), (w, f)
                assert p.tokens_per_s <= prev.tokens_per_s * (1 + 1e-9), (w, f)
            prev = p


def test_a_placement_with_more_cross_node_traffic_is_not_faster():
    """The chain on one node against the same chain with layer 1 moved to the other node: the same GPUs'
    work, only transfers cross nodes."""
    m = cases.model(num_moe_layers=2, num_experts=4, top_k=2)
    st = synthesize(2, 4, 2, num_tokens=512, seed=3)
    local = cases.deployment(m, cases.cluster(2, 4), st, "chain", [0, 1, 2, 3, 4, 5, 6, 7])
    split = cases.deployment(m, cases.cluster(2, 4), st, "chain", [0, 4, 1, 5, 2, 6, 3, 7])
    prof = cases.profile()
    for w in WORKLOADS:
        a = predict(prepare(prof, local, Options(micro_batches=2), w.phase), w)
        b = predict(prepare(prof, split, Options(micro_batches=2), w.phase), w)
        assert b.cross_node_bytes_per_token > a.cross_node_bytes_per_token
        assert b.latency_us >= a.latency_us * (1 - 1e-9)
        assert b.tokens_per_s <= a.tokens_per_s * (1 + 1e-9)


def test_tokens_per_second_never_falls_with_batch_in_decode():
    dep = _chain()
    prep = prepare(cases.profile(), dep, Options(), "decode")
    rates = [predict(prep, Workload("decode", b, 256)).tokens_per_s for b in (1, 2, 4, 8, 16, 32, 64)]
    assert all(np.diff(rates) >= -1e-9)
