"""Fat-tree generator: the seed's shape, hand-drawn small trees, hop counts against networkx, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.errors import InputError
from moeplace.placement.builder import build_fabric
from moeplace.placement.presets import load_cluster
from moeplace.topologies.base import TIER_CORE, TIER_LEAF, TIER_NVLINK, TIER_POD
from moeplace.topologies.fattree import fat_tree_shape, split_ports
from moeplace.topologies.specs import FatTreeSpec
from tests.topologies.helpers import ft, nx_host_hops


def test_split_ports_by_oversubscription():
    assert split_ports(40, 1.0) == (20, 20)
    assert split_ports(40, 2.0) == (26, 13)
    assert split_ports(40, 3.0) == (30, 10)
    assert split_ports(64, 1.0) == (32, 32)
    assert split_ports(40, 0.5) == (13, 26)


def test_seed_default_is_the_three_level_rail_optimized_tree():
    sh = fat_tree_shape(FatTreeSpec(), 232, 8)
    # 20 down ports per leaf -> units of 20 nodes; 232 / 20 -> 12 units x 8 rail leaves = 96 leaves > 40
    assert (sh.levels, sh.nodes_per_unit, sh.num_units, sh.num_leaves) == (3, 20, 12, 96)
    # a spine has 20 down ports: 2 units (16 leaves) per pod -> 6 pods of 20 spines
    assert (sh.units_per_pod, sh.num_pods, sh.spines_per_pod, sh.leaf_spine_cables) == (2, 6, 20, 1)
    # 20 planes; 6 pods x 20 uplinks per spine fit 4 cores per plane with 5 cables each (30 of 40 ports)
    assert (sh.cores_per_plane, sh.spine_core_cables, sh.num_spines, sh.num_cores) == (4, 5, 120, 80)


def test_default_topology_option_builds_the_seed_fabric():
    fabric = build_fabric(load_cluster("seed"), "fat-tree")
    assert fabric.num_nodes == 232 and fabric.num_gpus == 1856 and fabric.network.rails
    assert np.bincount(fabric.node_leaf_N).tolist() == [20] * 11 + [12]
    assert np.bincount(fabric.node_pod_N).tolist() == [40] * 5 + [32]
    assert fabric.params["spec"]["levels"] == 3 and fabric.params["shape"]["num_cores"] == 80
    assert sorted(set(fabric.network.switch_role_S)) == ["core", "leaf", "spine"]


def test_seed_refuses_two_levels_with_the_arithmetic():
    with pytest.raises(InputError) as err:
        fat_tree_shape(FatTreeSpec(levels=2), 232, 8)
    assert str(err.value) == ("topology: a 2-level fat-tree of 40-port switches tops out at 40 leaves x 20 down "
                              "ports = 800 endpoints, and 232 nodes x 8 NICs = 1,856 endpoints need 96 leaves "
                              "(12 rail groups of 8 leaves); use levels = 3")


def test_refusals_show_the_numbers():
    with pytest.raises(InputError, match=r"nodes_per_leaf = 30 needs 30 x 1 = 30 down ports on a leaf, a 40-port leaf "
                                         r"at 1:1 has 20 down \+ 20 up ports"):
        fat_tree_shape(FatTreeSpec(nodes_per_leaf=30), 232, 8)
    with pytest.raises(InputError, match=r"a node's 24 NICs need 24 ports on one leaf, a 40-port leaf at 1:1 has 20"):
        fat_tree_shape(FatTreeSpec(rail_optimized=False), 8, 24)
    with pytest.raises(InputError, match=r"a rail group of 8 leaves needs 8 spine down ports, a 8-port spine"):
        fat_tree_shape(FatTreeSpec(radix=8), 64, 8)
    with pytest.raises(InputError, match=r"tops out at 8 pods x 4 leaves x 4 nodes x 1 NICs = 128 endpoints, and 200 "
                                         r"nodes x 1 NICs = 200 endpoints need 13 pods of 4 leaves; more than 3"):
        fat_tree_shape(FatTreeSpec(radix=8, rail_optimized=False), 200, 1)
    with pytest.raises(InputError, match=r"leaves_per_pod = 1 splits 2 leaves into 2 pods, which needs levels = 3"):
        fat_tree_shape(FatTreeSpec(radix=8, rail_optimized=False, levels=2, leaves_per_pod=1), 8, 1)


def test_hand_drawn_two_level_tree():
    # radix 4, 1 NIC per node: leaves of 2 nodes with 2 uplinks; 3 leaves x 2 cables fit one spine? no:
    # 3 leaves x 2 = 6 > 4 ports, so 2 spines with 1 cable from every leaf.
    f = ft(6, gpus=2, nics=1, radix=4, rail_optimized=False)
    net = f.network
    assert net.switches == ("leaf001", "leaf002", "leaf003", "spine01", "spine02")
    assert f.node_leaf_N.tolist() == [0, 0, 1, 1, 2, 2] and f.node_pod_N.tolist() == [0] * 6
    expected = np.array([[1, 2, 3, 3, 3, 3], [2, 1, 3, 3, 3, 3], [3, 3, 1, 2, 3, 3], [3, 3, 2, 1, 3, 3],
                         [3, 3, 3, 3, 1, 2], [3, 3, 3, 3, 2, 1]])
    assert (f.node_tier_NN == expected).all()
    assert f.node_hops_NN[0].tolist() == [0, 2, 4, 4, 4, 4]
    cables = {(net.vertex_name(a), net.vertex_name(b)): c for a, b, c in
              zip(net.link_a_L.tolist(), net.link_b_L.tolist(), net.link_count_L.tolist()) if a >= 6}
    assert cables == {(f"leaf00{i}", f"spine0{j}"): 1 for i in (1, 2, 3) for j in (1, 2)}
    assert f.gpu_tier(0, 1) == TIER_NVLINK and f.gpu_tier(0, 2) == TIER_LEAF and f.gpu_tier(0, 11) == TIER_POD


def test_hand_drawn_three_level_rail_tree():
    # radix 8: leaves 4 down / 4 up; 2 rails; units of 4 nodes; spines take 4 leaves = 2 units per pod.
    f = ft(12, gpus=2, nics=2, radix=8, levels=3)
    sh = f.params["shape"]
    got = (sh["levels"], sh["num_units"], sh["num_pods"], sh["spines_per_pod"], sh["cores_per_plane"])
    assert got == (3, 3, 2, 4, 1)
    assert f.node_leaf_N.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert f.node_pod_N.tolist() == [0] * 8 + [1] * 4
    net = f.network
    # node k's NIC r plugs into leaf-suU-r<r>
    assert [net.switches[s] for s in net.nic_switch_NR[5]] == ["leaf-su02-r0", "leaf-su02-r1"]
    assert f.node_tier_NN[0, 3] == TIER_LEAF and f.node_tier_NN[0, 4] == TIER_POD and f.node_tier_NN[0, 8] == TIER_CORE
    assert f.node_hops_NN[0, [3, 4, 8]].tolist() == [2, 4, 6]


@pytest.mark.parametrize("kw", [
    dict(num_nodes=6, gpus=2, nics=1, radix=4, rail_optimized=False),
    dict(num_nodes=12, gpus=2, nics=2, radix=8),
    dict(num_nodes=30, gpus=4, nics=2, radix=8, rail_optimized=False, oversubscription=[3.0, 1.0]),
    dict(num_nodes=40, gpus=8, nics=4, radix=12, levels=3),
    dict(num_nodes=9, gpus=8, nics=8, radix=40, nodes_per_leaf=2, leaves_per_pod=1),
])
def test_hop_counts_agree_with_networkx(kw):
    f = ft(**kw)
    assert (f.node_hops_NN == nx_host_hops(f)).all()
    # and the tiers are the hop classes of a fat-tree
    hops_of_tier = {TIER_LEAF: 2, TIER_POD: 4, TIER_CORE: 6}
    off = ~np.eye(f.num_nodes, dtype=bool)
    for t, h in hops_of_tier.items():
        assert (f.node_hops_NN[off & (f.node_tier_NN == t)] == h).all()


def test_positions_follow_the_legacy_nodes_per_leaf_and_leaves_per_pod():
    cluster = load_cluster(None, num_nodes=3, gpus_per_node=2, topology={"nodes_per_leaf": 2, "leaves_per_pod": 1})
    f = build_fabric(cluster, "fat-tree")
    assert f.node_leaf_N.tolist() == [0, 0, 1] and f.node_pod_N.tolist() == [0, 0, 1]
    assert f.level_capacities() == [(TIER_LEAF, 1), (TIER_POD, 2), (TIER_CORE, 2)]


def test_ports_never_exceed_the_radix():
    for kw in (dict(), dict(rail_optimized=False), dict(oversubscription=[2.0, 1.0]), dict(radix=64)):
        f = ft(**kw)
        net = f.network
        used = np.zeros(net.num_switches, dtype=np.int64)
        np.add.at(used, net.link_b_L - net.num_hosts, net.link_count_L)
        sw = net.link_a_L >= net.num_hosts
        np.add.at(used, net.link_a_L[sw] - net.num_hosts, net.link_count_L[sw])
        assert used.max() <= net.switch_ports_S.max(), kw


def test_same_inputs_same_fabric():
    a, b = ft(), ft()
    assert a.network.switches == b.network.switches
    assert (a.network.link_a_L == b.network.link_a_L).all() and (a.node_tier_NN == b.node_tier_NN).all()
    assert a.params == b.params
