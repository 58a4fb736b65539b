"""Dragonfly+ generator: the paper's sizing, global links spread evenly, hop counts, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.errors import InputError
from moeplace.topologies.base import TIER_CORE, TIER_LEAF, TIER_POD
from moeplace.topologies.dragonfly import dragonfly_shape
from moeplace.topologies.specs import DragonflyPlusSpec
from tests.topologies.helpers import dfp, nx_host_hops


def test_paper_sizing_for_the_seed():
    sh = dragonfly_shape(DragonflyPlusSpec(), 232, 8)
    # radix 40: 20 spine links per leaf, 20 host ports -> units of 20 nodes (one NIC per rail leaf);
    # 20 leaves per group rounded down to whole rail groups of 8 -> 16 leaves = 2 units per group
    assert (sh.nodes_per_unit, sh.leaves_per_group, sh.units_per_group, sh.spines_per_group) == (20, 16, 2, 20)
    # 12 units -> 6 groups; 20 spines x 20 global links = 400 per group, 80 to each of the 5 others
    assert (sh.num_groups, sh.global_links_per_spine, sh.links_per_group_pair) == (6, 20, 80)
    assert dragonfly_shape(DragonflyPlusSpec(rail_optimized=False), 232, 8).nodes_per_unit == 2


def test_global_links_are_spread_evenly():
    f = dfp(radix=8, rail_optimized=False, num_nodes=40, gpus=2, nics=1)
    net = f.network
    sh = f.params["shape"]
    N = net.num_hosts
    pod = net.positions[2]
    sw = net.is_switch_link_L
    a, b, c = net.link_a_L[sw] - N, net.link_b_L[sw] - N, net.link_count_L[sw]
    glob = (net.switch_level_S[a] == 2) & (net.switch_level_S[b] == 2)
    pairs = {}
    for x, y, k in zip(pod[a[glob]], pod[b[glob]], c[glob]):
        pairs[(min(x, y), max(x, y))] = pairs.get((min(x, y), max(x, y)), 0) + int(k)
    G = sh["num_groups"]
    assert set(pairs) == {(i, j) for i in range(G) for j in range(i + 1, G)}
    assert set(pairs.values()) == {sh["links_per_group_pair"]}
    per_spine = np.zeros(net.num_switches, dtype=int)
    np.add.at(per_spine, a[glob], c[glob])
    np.add.at(per_spine, b[glob], c[glob])
    spines = net.switch_level_S == 2
    assert per_spine[spines].max() - per_spine[spines].min() <= 1
    assert per_spine.max() <= sh["global_links_per_spine"]


def test_hops_tiers_and_labels():
    f = dfp(radix=8, num_nodes=24, gpus=2, nics=2)
    assert f.tier_labels[3:] == ("group", "global")
    assert (f.node_hops_NN == nx_host_hops(f)).all()
    off = ~np.eye(f.num_nodes, dtype=bool)
    for t, h in ((TIER_LEAF, 2), (TIER_POD, 4), (TIER_CORE, 5)):
        assert (f.node_hops_NN[off & (f.node_tier_NN == t)] == h).all()
    assert f.diameter_hops == 5


def test_seed_hops_agree_with_networkx():
    f = dfp()
    assert (f.node_hops_NN == nx_host_hops(f)).all()
    assert np.bincount(f.node_pod_N).tolist() == [40] * 5 + [32]


def test_too_many_groups_is_refused_with_the_arithmetic():
    with pytest.raises(InputError, match=r"200 nodes need 50 groups, but a group has 2 spines x 2 global links = 4 "
                                         r"global links, enough for at most 5 groups"):
        dragonfly_shape(DragonflyPlusSpec(radix=4, rail_optimized=False), 200, 1)
    with pytest.raises(InputError, match=r"num_groups = 2 holds 2 x 2 units x 20 nodes = 80 nodes, fewer than 232"):
        dragonfly_shape(DragonflyPlusSpec(num_groups=2), 232, 8)
    with pytest.raises(InputError, match=r"a spine needs 16 leaf ports \+ 30 global ports = 46, more than its 40"):
        dragonfly_shape(DragonflyPlusSpec(global_links_per_spine=30), 232, 8)
    with pytest.raises(InputError, match=r"leaves_per_group = 12 is not a whole number of rail groups of 8 leaves"):
        dragonfly_shape(DragonflyPlusSpec(leaves_per_group=12), 232, 8)
