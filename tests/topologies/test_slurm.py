"""Slurm topology.conf: the samples, every bad-input rule, and generate -> export -> import round trips."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.errors import InputError
from moeplace.placement.builder import build_fabric
from moeplace.placement.presets import load_cluster
from moeplace.topologies.base import TIER_CORE, TIER_LEAF, TIER_POD
from moeplace.topologies.hostlist import compress_hostlist
from moeplace.topologies.slurm import logical_lines, parse_topology_conf, topology_conf
from tests.topologies.helpers import DATA, dfp, ft


def parse(text: str, source="t.conf"):
    return parse_topology_conf(text, source, nics_per_node=8, nic_gbps=200.0)


def test_tree_sample():
    cluster = load_cluster(None, num_nodes=48)
    f = build_fabric(cluster, str(DATA / "ant-tree.topology.conf"))
    assert f.kind == "topology.conf" and f.hosts[:2] == ("gpu001", "gpu002") and "gpu031" not in f.hosts
    assert f.hosts[24:32] == ("gpu025", "gpu026", "gpu027", "gpu028", "gpu029", "gpu030", "gpu032", "gpu033")
    assert np.bincount(f.node_leaf_N).tolist() == [8] * 6 and np.bincount(f.node_pod_N).tolist() == [16] * 3
    assert f.node_tier_NN[0, 7] == TIER_LEAF and f.node_tier_NN[0, 8] == TIER_POD and f.node_tier_NN[0, 16] == TIER_CORE
    assert f.node_hops_NN[0, [7, 8, 16]].tolist() == [2, 4, 6]
    net = f.network
    # non-blocking: a leaf's uplink carries its 8 nodes x 8 NICs x 200 Gb/s
    up = [g for a, b, g in zip(net.link_a_L, net.link_b_L, net.link_gbps_L)
          if net.vertex_name(int(a)) == "ibsw01" and net.vertex_name(int(b)) == "spine1"]
    assert up == [12800.0]
    assert f.params["source"] == "topology.conf" and len(f.params["sha256"]) == 64


def test_block_sample():
    cluster = load_cluster(None, num_nodes=72, gpus_per_node=4)
    f = build_fabric(cluster, str(DATA / "nvl-blocks.topology.conf"))
    assert np.bincount(f.node_leaf_N).tolist() == [18] * 4 and np.bincount(f.node_pod_N).tolist() == [36] * 2
    assert f.node_tier_NN[0, [17, 18, 36]].tolist() == [TIER_LEAF, TIER_POD, TIER_CORE]


def test_blocks_without_sizes_pair_up():
    imp = parse("BlockName=b1 Nodes=n[1-2]\nBlockName=b2 Nodes=n[3-4]\nBlockName=b3 Nodes=n[5-6]\n")
    f = imp.fabric(imp.hosts, 1)
    assert f.node_pod_N.tolist() == [0, 0, 0, 0, 1, 1]


def test_comments_case_and_continuations():
    lines = logical_lines("# c\nswitchname=s0 \\\n  nodes=n[1-2]  # tail\n\nSwitchName=a\\#b Nodes=n3\n")
    assert lines[0][:2] == (2, "switchname=s0    nodes=n[1-2]")
    assert lines[1][:2] == (5, "SwitchName=a#b Nodes=n3")


@pytest.mark.parametrize("text, message", [
    ("SwitchName=s0 Nodes=n[1-2]\nSwitchName=top Switches=s[0-1]\n",
     "t.conf: line 2: undefined switch 's1' in Switches=s[0-1]: 'SwitchName=top Switches=s[0-1]'"),
    ("SwitchName=s0 Nodes=n[1-2]\nSwitchName=s1 Switches=s0,s2\nSwitchName=s2 Switches=s1\n",
     "t.conf: line 3: cycle in the switch tree: s1 -> s2 -> s1: 'SwitchName=s2 Switches=s1'"),
    ("SwitchName=s0 Nodes=n[1-4]\nSwitchName=s1 Nodes=n[4-6]\nSwitchName=t Switches=s[0-1]\n",
     "t.conf: line 2: node 'n4' is under two leaf switches: 's0' (line 1) and 's1': 'SwitchName=s1 Nodes=n[4-6]'"),
    ("SwitchName=s0 Nodes=n[1-4\n",
     "t.conf: line 1: malformed hostlist Nodes=n[1-4 (unclosed '[' in hostlist 'n[1-4'): 'SwitchName=s0 Nodes=n[1-4'"),
    ("SwitchName=s0 Nodes=n[4-1]\n",
     "t.conf: line 1: malformed hostlist Nodes=n[4-1] (range '4-1' runs backwards in hostlist 'n[4-1]'): "
     "'SwitchName=s0 Nodes=n[4-1]'"),
    ("SwitchName=s0 Nodes=n1 Switches=s1\nSwitchName=s1 Nodes=n2\n",
     "t.conf: line 1: a switch needs either Nodes= (a leaf) or Switches=, not both: "
     "'SwitchName=s0 Nodes=n1 Switches=s1'"),
    ("SwitchName=s0 LinkSpeed=10\n",
     "t.conf: line 1: a switch needs either Nodes= (a leaf) or Switches=, and has neither: "
     "'SwitchName=s0 LinkSpeed=10'"),
    ("SwitchName=s0 Nodes=n1\nSwitchName=s0 Nodes=n2\n",
     "t.conf: line 2: 's0' is defined twice (first at line 1): 'SwitchName=s0 Nodes=n2'"),
    ("SwitchName=s0 Nodes=n1 Speed=10\n", "t.conf: line 1: unknown key 'speed' on a switchname line: "
     "'SwitchName=s0 Nodes=n1 Speed=10'"),
    ("Switch s0 Nodes=n1\n", "t.conf: line 1: expected Key=Value, got 'Switch': 'Switch s0 Nodes=n1'"),
    ("SwitchName=s0 Nodes=n1\nBlockName=b1 Nodes=n2\n",
     "t.conf: line 2: topology/block line in a topology/tree file: 'BlockName=b1 Nodes=n2'"),
    ("RingName=r0 Nodes=n[1-4]\n",
     "t.conf: line 1: the topology/ring plugin is not supported: 'RingName=r0 Nodes=n[1-4]'"),
    ("BlockName=b1 Nodes=n[1-4]\nBlockSizes=4,12\n",
     "t.conf: line 2: 12 is not a power-of-two multiple of 4: 'BlockSizes=4,12'"),
    ("BlockName=b1 Nodes=n[1-4]\nBlockName=b2 Nodes=n[5-6]\nBlockSizes=4\n",
     "t.conf: line 2: block 'b2' has 2 nodes, fewer than the base block size 4: 'BlockName=b2 Nodes=n[5-6]'"),
    ("BlockName=b1 Nodes=n[1-4]\nBlockName=b2 Nodes=n[4-6]\n",
     "t.conf: line 2: node 'n4' is under two blocks: 'b1' (line 1) and 'b2': 'BlockName=b2 Nodes=n[4-6]'"),
])
def test_bad_input_names_line_and_text(text, message):
    with pytest.raises(InputError) as err:
        parse(text)
    assert str(err.value) == message


def test_separate_trees_cannot_host_one_plan():
    imp = parse("SwitchName=a Nodes=n[1-2]\nSwitchName=b Nodes=n[3-4]\n")
    with pytest.raises(InputError, match="hosts n1 and n3 are not connected by any path of switches"):
        imp.fabric(imp.hosts, 8)
    assert imp.fabric(["n1", "n2"], 8).num_nodes == 2


def _round_trip(fabric, tmp_path):
    path = tmp_path / "topology.conf"
    path.write_text(topology_conf(fabric))
    cluster = load_cluster(None, num_nodes=fabric.num_nodes, gpus_per_node=fabric.gpus_per_node,
                           hosts=compress_hostlist(list(fabric.hosts)))
    back = build_fabric(cluster, str(path))
    assert back.hosts == fabric.hosts
    G = fabric.num_gpus
    a, b = np.divmod(np.arange(G * G), G)
    assert (back.gpu_tier(a, b) == fabric.gpu_tier(a, b)).all()
    return back


@pytest.mark.parametrize("make", [
    lambda: ft(),                                                   # the seed: 3 levels, rails
    lambda: ft(rail_optimized=False),                               # 116 leaves of 2 nodes
    lambda: ft(num_nodes=64, oversubscription=[2.0, 1.0]),          # 2 levels, one pod
    lambda: ft(num_nodes=30, gpus=4, nics=1, radix=8, rail_optimized=False),
    lambda: dfp(),                                                  # Dragonfly+ groups become pods
])
def test_generate_export_import_keeps_every_gpu_tier(make, tmp_path):
    _round_trip(make(), tmp_path)


def test_imported_fabrics_round_trip_too(tmp_path):
    cluster = load_cluster(None, num_nodes=48)
    f = build_fabric(cluster, str(DATA / "ant-tree.topology.conf"))
    text = topology_conf(f)
    assert "SwitchName=ibsw04 Nodes=gpu[025-030,032-033]" in text and "SwitchName=core Switches=pod[01-03]" in text
    _round_trip(f, tmp_path)


def test_a_huge_node_list_is_checked_for_duplicates_in_linear_time():
    """Nodes=gpu[1-100000]: the duplicate check is a set (it was quadratic: 115 s); then the count rule."""
    imp_or_err = None
    try:
        imp_or_err = parse("SwitchName=s1 Nodes=gpu[1-100000],gpu7\n")
    except InputError as exc:
        imp_or_err = str(exc)
    assert imp_or_err == "t.conf: line 1: 'gpu7' is listed twice: 'SwitchName=s1 Nodes=gpu[1-100000],gpu7'"
