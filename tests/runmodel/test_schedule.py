"""Schedules: every send has its receive, and executing them (in numpy) computes the reference function."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.runmodel.schedule import rank_schedule
from moeplace.runmodel.workload import assign_ranks, gate_weights, rank_nodes, rank_table
from tests.runtime.helpers import manifest, tiny_model


def _schedules(m, paths, gates, token_ids, dedup=False):
    ranks_LER, reps = rank_table(m)
    rank_TLK = assign_ranks(paths, ranks_LER, reps, token_ids)
    nodes = rank_nodes(m) if dedup else (None, None)
    out = []
    for e in m.ranks:
        slots = {(x.moe_layer, x.expert): i for i, x in enumerate(e.experts)}
        out.append(rank_schedule(m.flow, e.rank, m.world_size, token_ids, paths, rank_TLK, gates, slots, *nodes))
    return out


def _simulate(m, scheds, x0, weights, first_id=0):
    """Run the schedules rank by rank in numpy: transfers become array copies between ranks' tables."""
    tables = [x0[s.home_rows].copy() if s.at_home else x0.copy() for s in scheds]
    for li in range(m.model.num_moe_layers):
        xs = []
        for r, s in enumerate(scheds):
            lay = s.layers[li]
            x = np.full((lay.n_in, x0.shape[1]), np.nan)
            x[lay.fill.local_dst] = tables[r][lay.fill.local_src]
            xs.append(x)
        for r, s in enumerate(scheds):
            tr = s.layers[li].fill
            for peer, rows in zip(tr.send_peers, tr.send_rows):
                rt = scheds[peer].layers[li].fill
                xs[peer][rt.recv_rows[rt.recv_peers.index(r)]] = tables[r][rows]
        sent = [x.copy() for x in xs]  # the relay forwards what the gateway received in the fill
        for r, s in enumerate(scheds):
            tr = s.layers[li].relay
            for peer, rows in zip(tr.send_peers, tr.send_rows):
                rt = scheds[peer].layers[li].relay
                xs[peer][rt.recv_rows[rt.recv_peers.index(r)]] = sent[r][rows]
        accs = []
        for r, s in enumerate(scheds):
            lay = s.layers[li]
            acc = np.zeros_like(xs[r])
            for task in lay.tasks:
                ref = m.ranks[r].experts[task.slot]
                w1, w2 = weights[(ref.moe_layer, ref.expert)]
                np.add.at(acc, task.rows, task.gate[:, None] * (np.tanh(xs[r][task.rows] @ w1) @ w2))
            accs.append(acc)
        summed = [a.copy() for a in accs]  # the reduce adds a node's rows at its aggregator before the combine
        for r, s in enumerate(scheds):
            tr = s.layers[li].reduce
            for peer, rows in zip(tr.send_peers, tr.send_rows):
                rt = scheds[peer].layers[li].reduce
                np.add.at(summed[peer], rt.recv_rows[rt.recv_peers.index(r)], accs[r][rows])
        accs = summed
        outs = []
        for r, s in enumerate(scheds):
            lay = s.layers[li]
            out = tables[r].copy() if s.at_home else xs[r][lay.keep_src].copy()
            np.add.at(out, lay.combine.local_dst, accs[r][lay.combine.local_src])
            outs.append(out)
        for r, s in enumerate(scheds):
            tr = s.layers[li].combine
            for peer, rows in zip(tr.send_peers, tr.send_rows):
                rt = scheds[peer].layers[li].combine
                np.add.at(outs[peer], rt.recv_rows[rt.recv_peers.index(r)], accs[r][rows])
        tables = outs
    result = np.full_like(x0, np.nan)
    for s, t in zip(scheds, tables):
        result[s.out_tokens - first_id] = t
    return result


def _reference(x0, paths, gates, weights):
    x = x0.copy()
    for ml in range(paths.shape[1]):
        acc = np.zeros_like(x)
        for t in range(x.shape[0]):
            for j in range(paths.shape[2]):
                w1, w2 = weights[(ml, int(paths[t, ml, j]))]
                acc[t] += gates[t, ml, j] * (np.tanh(x[t] @ w1) @ w2)
        x = x + acc
    return x


CASES = {
    "one expert per rank and layer": dict(nodes=1, gpus_per_node=4, placement=None),
    "two nodes, layer-major": dict(nodes=2, gpus_per_node=2, placement=lambda ml, e: (ml * 4 + e) // 2),
    "both of a token's experts on one rank": dict(nodes=1, gpus_per_node=2, placement=lambda ml, e: e // 2),
    "replicas": dict(nodes=1, gpus_per_node=4, placement=lambda ml, e: [e, (e + 1) % 4] if e == 0 else e),
}


CASES["two nodes of three, node dedup"] = dict(nodes=2, gpus_per_node=3, placement=lambda ml, e: (e * 5 + ml) % 6)


@pytest.mark.parametrize("dedup", [False, True])
@pytest.mark.parametrize("flow", ["chain", "ep"])
@pytest.mark.parametrize("case", list(CASES))
def test_schedules_compute_the_reference(flow, case, dedup):
    m = manifest(flow, **CASES[case])
    rng = np.random.default_rng(5)
    T, L, k, E, H = 40, 2, 2, 4, 6
    paths = np.stack([np.stack([rng.permutation(E)[:k] for _ in range(L)]) for _ in range(T)]).astype(np.int32)
    gates = gate_weights(paths.shape, 1)
    weights = {(l, e): (rng.standard_normal((H, 5)), rng.standard_normal((5, H))) for l in range(L) for e in range(E)}
    x0 = rng.standard_normal((T, H))
    ids = np.arange(100, 100 + T)
    got = _simulate(m, _schedules(m, paths, gates, ids, dedup), x0, weights, first_id=100)
    np.testing.assert_allclose(got, _reference(x0, paths, gates, weights), rtol=1e-12, atol=1e-12)


def test_transfers_pair_up_and_count_by_hand():
    # 4 ranks, expert e of layer l on rank (e + l) % 4; two tokens.
    m = manifest("chain")
    paths = np.array([[[0, 1], [2, 3]], [[3, 0], [0, 2]]], dtype=np.int32)  # [T=2, L=2, k=2]
    gates = gate_weights(paths.shape, 0)
    s = _schedules(m, paths, gates, np.arange(2))
    # Layer 0: token 0 on ranks 0 (primary) and 1; token 1 on ranks 3 (primary) and 0.
    assert [x.layers[0].n_in for x in s] == [2, 1, 0, 1]
    assert s[1].layers[0].combine.send_peers == (0,) and s[0].layers[0].combine.send_peers == (3,)
    assert s[0].layers[0].combine.recv_peers == (1,) and s[3].layers[0].combine.recv_peers == (0,)
    # Layer 1 experts (2, 3) of token 0 live on ranks 3 and 0; (0, 2) of token 1 on ranks 1 and 3.
    assert s[0].layers[1].fill.send_peers == (3,)          # primary 0 forwards token 0 to rank 3, keeps a copy
    assert s[0].layers[1].fill.local_src.tolist() == [0]
    assert s[3].layers[1].fill.send_peers == (1,)          # primary 3 forwards token 1 to rank 1; rank 3 keeps it
    assert sorted(s[3].layers[1].fill.recv_peers) == [0]
    # The last primaries: token 0 -> rank 3 (expert 2 of layer 1), token 1 -> rank 1 (expert 0 of layer 1).
    assert s[3].out_tokens.tolist() == [0] and s[1].out_tokens.tolist() == [1]
    for li in range(2):
        for r, x in enumerate(s):
            for tr_name in ("fill", "relay", "reduce", "combine"):
                tr = getattr(x.layers[li], tr_name)
                for peer, rows in zip(tr.send_peers, tr.send_rows):
                    other = getattr(s[peer].layers[li], tr_name)
                    assert other.recv_rows[other.recv_peers.index(r)].size == rows.size


def test_ep_home_is_token_id_mod_world():
    m = manifest("ep")
    paths = np.array([[[0, 1], [0, 1]]] * 8, dtype=np.int32)
    s = _schedules(m, paths, gate_weights(paths.shape, 0), np.arange(8))
    assert [x.out_tokens.tolist() for x in s] == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert s[2].layers[0].fill.send_peers == (0, 1)   # home 2 dispatches to expert 0 (rank 0) and expert 1 (rank 1)
    assert s[2].layers[0].fill.rows_sent == 4
    assert s[0].layers[0].tasks[0].rows.size == 8     # expert 0 sees all 8 tokens


def test_tiny_model_helper():
    assert tiny_model().num_moe_layers == 2


def _network_rows(m, scheds):
    node = [e.node for e in m.ranks]
    return sum(rows.size for r, x in enumerate(scheds) for lay in x.layers for tr in lay.transfers
               for peer, rows in zip(tr.send_peers, tr.send_rows) if node[peer] != node[r])


def test_node_dedup_crosses_once_per_remote_node_by_hand():
    # 2 nodes x 2 ranks; layer 0: expert e on rank e, layer 1: expert e on rank (e + 1) % 4.
    m = manifest("chain", nodes=2, gpus_per_node=2, model=tiny_model(),
                 placement=lambda ml, e: e if ml == 0 else (e + 1) % 4)
    paths = np.array([[[0, 1], [1, 2]]], dtype=np.int32)  # token 0: layer 0 on ranks 0, 1; layer 1 on ranks 2, 3
    gates = gate_weights(paths.shape, 0)
    plain = _schedules(m, paths, gates, np.arange(1))
    dd = _schedules(m, paths, gates, np.arange(1), dedup=True)
    assert plain[0].layers[1].fill.send_peers == (2, 3)   # GPU to GPU: two network crossings
    assert dd[0].layers[1].fill.send_peers == (2,)        # once, to the gateway with the same local index
    assert dd[2].layers[1].relay.send_peers == (3,) and dd[3].layers[1].relay.recv_peers == (2,)
    # layer 1's combine: secondary rank 3 -> primary rank 2, same node: direct
    assert dd[3].layers[1].combine.send_peers == (2,) and dd[3].layers[1].reduce.send_peers == ()
    assert _network_rows(m, plain) == 2 and _network_rows(m, dd) == 1


def test_node_dedup_reduces_the_ep_combine_before_it_crosses():
    m = manifest("ep", nodes=2, gpus_per_node=2, placement=lambda ml, e: e)
    paths = np.array([[[2, 3], [2, 3]]], dtype=np.int32)  # token 0 (home rank 0): both experts on node 1
    gates = gate_weights(paths.shape, 0)
    dd = _schedules(m, paths, gates, np.arange(1), dedup=True)
    for li in range(2):
        assert dd[0].layers[li].fill.send_peers == (2,) and dd[2].layers[li].relay.send_peers == (3,)
        assert dd[3].layers[li].reduce.send_peers == (2,) and dd[3].layers[li].combine.send_peers == ()
        assert dd[2].layers[li].combine.send_peers == (0,)
    assert _network_rows(m, dd) == 2 * 2 and _network_rows(m, _schedules(m, paths, gates, np.arange(1))) == 2 * 4


def test_gateways_follow_the_senders_local_index():
    m = manifest("ep", nodes=2, gpus_per_node=2, placement=lambda ml, e: e)
    paths = np.array([[[2, 3], [2, 3]]] * 2, dtype=np.int32)  # homes 0 and 1, experts on ranks 2 and 3
    dd = _schedules(m, paths, gate_weights(paths.shape, 0), np.arange(2), dedup=True)
    assert dd[0].layers[0].fill.send_peers == (2,) and dd[1].layers[0].fill.send_peers == (3,)
