"""Routing expected traffic: hand-checked ECMP splits, PXN, conservation, Valiant's detour, the API edges."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.topologies.routing import link_loads
from tests.topologies.helpers import dfp, ft


def loads_by_name(ll) -> dict[str, float]:
    net = ll.network
    out = {}
    for link in range(net.num_links):
        for d in (0, 1):
            if ll.load_bytes_L2[link, d]:
                out[net.link_name(link, d)] = float(ll.load_bytes_L2[link, d])
    return out


def test_ecmp_splits_over_both_spines():
    f = ft(6, gpus=2, nics=1, radix=4, rail_optimized=False)   # 3 leaves x 2 nodes, 2 spines
    ll = link_loads(f, [0], [4], [100.0])                        # node001:0 -> node003:0
    assert loads_by_name(ll) == {"node001 -> leaf001": 100.0, "leaf001 -> spine01": 50.0, "leaf001 -> spine02": 50.0,
                                 "spine01 -> leaf002": 50.0, "spine02 -> leaf002": 50.0, "leaf002 -> node003": 100.0}
    assert ll.nic_tx_bytes_NR[:, 0].tolist() == [100, 0, 0, 0, 0, 0]
    assert ll.nic_rx_bytes_NR[:, 0].tolist() == [0, 0, 100, 0, 0, 0]
    assert ll.network_bytes == 100.0 and ll.nvlink_tx_bytes_G.sum() == 0
    # host links are 1 x 200 Gb/s: 100 B take 4 ns, so the link is full at 250 M units per second
    assert ll.saturation_rate == pytest.approx(200e9 / 8 / 100)
    assert ll.max_link_utilization(1e6) == pytest.approx(100 * 8 * 1e6 / 200e9)


def test_same_node_is_nvlink_and_same_gpu_is_nothing():
    f = ft(6, gpus=2, nics=1, radix=4, rail_optimized=False)
    ll = link_loads(f, [0, 1, 3], [1, 1, 3], [10.0, 5.0, 7.0])
    assert ll.nvlink_tx_bytes_G.tolist() == [10.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert ll.load_bytes_L2.sum() == 0 and ll.saturation_rate == float("inf")


def test_pxn_crosses_nvlink_then_the_rail_leaf():
    f = ft(4, gpus=2, nics=2, radix=8)                           # one unit of rail leaves r0, r1
    ll = link_loads(f, [0], [3], [100.0])                        # node001:0 (rail 0) -> node002:1 (rail 1)
    assert loads_by_name(ll) == {"node001 -> leaf-su01-r1": 100.0, "leaf-su01-r1 -> node002": 100.0}
    assert ll.nvlink_tx_bytes_G[0] == 100.0 and ll.nic_tx_bytes_NR[0].tolist() == [0.0, 100.0]
    off = link_loads(f, [0], [3], [100.0], pxn=False)            # stays on rail 0 and changes rails at a spine
    names = loads_by_name(off)
    assert names["node001 -> leaf-su01-r0"] == 100.0 and names["leaf-su01-r1 -> node002"] == 100.0
    assert sum(v for k, v in names.items() if k.startswith("leaf-su01-r0 -> spine")) == pytest.approx(100.0)
    assert off.nvlink_tx_bytes_G.sum() == 0


def _conservation(ll):
    net = ll.network
    V = net.num_hosts + net.num_switches
    inflow, outflow = np.zeros(V), np.zeros(V)
    np.add.at(outflow, net.link_a_L, ll.load_bytes_L2[:, 0])
    np.add.at(inflow, net.link_b_L, ll.load_bytes_L2[:, 0])
    np.add.at(outflow, net.link_b_L, ll.load_bytes_L2[:, 1])
    np.add.at(inflow, net.link_a_L, ll.load_bytes_L2[:, 1])
    sw = slice(net.num_hosts, V)
    assert np.allclose(inflow[sw], outflow[sw])
    assert np.allclose(outflow[:net.num_hosts], ll.nic_tx_bytes_NR.sum(axis=1))
    assert np.allclose(inflow[:net.num_hosts], ll.nic_rx_bytes_NR.sum(axis=1))


@pytest.mark.parametrize("routing", ["ecmp", "valiant"])
def test_every_switch_forwards_what_it_receives(routing):
    rng = np.random.default_rng(1)
    for f in (ft(), dfp()):
        src, dst = rng.integers(0, f.num_gpus, 20000), rng.integers(0, f.num_gpus, 20000)
        _conservation(link_loads(f, src, dst, rng.random(20000), routing=routing))


def test_uniform_traffic_loads_symmetric_links_equally():
    f = ft(80, levels=3)                                          # 4 full units, 2 pods of 2 units
    G = f.num_gpus
    src, dst = np.divmod(np.arange(G * G), G)
    ll = link_loads(f, src, dst, np.ones(G * G))
    net = ll.network
    lvl = net.switch_level_S
    up = net.is_switch_link_L & (lvl[net.link_a_L - net.num_hosts] == 1) & (lvl[net.link_b_L - net.num_hosts] == 2)
    leaf_up = ll.load_bytes_L2[up, 0]
    assert np.allclose(leaf_up, leaf_up[0])
    # 80 nodes, one NIC per GPU: each of the 640 GPUs sends 639 - 7 = 632 units to other nodes, over its own NIC
    assert np.allclose(ll.nic_tx_bytes_NR, 632.0)


def test_valiant_doubles_the_global_hops():
    f = dfp(rail_optimized=False, num_nodes=60, gpus=1, nics=1, radix=8, global_links_per_spine=4)
    net = f.network
    assert int(f.node_pod_N.max()) + 1 >= 3
    rng = np.random.default_rng(2)
    src, dst = rng.integers(0, 60, 3000), rng.integers(0, 60, 3000)
    b = rng.random(3000)
    cross = float(b[(f.node_pod_N[src] != f.node_pod_N[dst])].sum())
    N = net.num_hosts
    sw = net.is_switch_link_L
    glob = np.zeros(net.num_links, dtype=bool)
    glob[sw] = (net.switch_level_S[net.link_a_L[sw] - N] == 2) & (net.switch_level_S[net.link_b_L[sw] - N] == 2)
    minimal = link_loads(f, src, dst, b, routing="minimal")
    valiant = link_loads(f, src, dst, b, routing="valiant")
    assert minimal.load_bytes_L2[glob].sum() == pytest.approx(cross)
    assert valiant.load_bytes_L2[glob].sum() == pytest.approx(2 * cross)
    assert np.allclose(minimal.nic_tx_bytes_NR, valiant.nic_tx_bytes_NR)


def test_valiant_with_two_pods_is_minimal():
    f = dfp(num_nodes=16, gpus=2, nics=2, radix=8)
    assert int(f.node_pod_N.max()) == 1
    rng = np.random.default_rng(3)
    src, dst, b = rng.integers(0, 32, 500), rng.integers(0, 32, 500), rng.random(500)
    assert np.allclose(link_loads(f, src, dst, b, routing="valiant").load_bytes_L2,
                       link_loads(f, src, dst, b, routing="minimal").load_bytes_L2)


def test_bad_arguments():
    f = ft(6, gpus=2, nics=1, radix=4, rail_optimized=False)
    with pytest.raises(ValueError, match="GPU index outside 0..11"):
        link_loads(f, [0], [12], [1.0])
    with pytest.raises(ValueError, match="unknown routing 'adaptive'"):
        link_loads(f, [0], [1], [1.0], routing="adaptive")
    with pytest.raises(ValueError, match="differ in length"):
        link_loads(f, [0, 1], [1], [1.0])
    assert link_loads(dfp(num_nodes=40, gpus=2, nics=2, radix=8), [0], [1], [1.0]).routing == "minimal"
    assert link_loads(f, [0], [1], [1.0]).routing == "ecmp"
