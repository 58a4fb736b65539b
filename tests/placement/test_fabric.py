"""`--topology`: names, generator files, host lists, sniffing, and rebuilding a plan's fabric from its record."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.errors import InputError
from moeplace.placement.builder import build_fabric
from moeplace.placement.fabric import rebuild_fabric, sniff
from moeplace.placement.presets import load_cluster
from tests.topologies.helpers import DATA


def test_sniff():
    assert sniff("# x\n\nSwitchName=s0 Nodes=n1\n") == "topology.conf"
    assert sniff("blockname=b Nodes=n1") == "topology.conf"
    assert sniff("#\n# Topology file\nvendid=0x2c9\n") == "ibnetdiscover"
    assert sniff('Switch\t41 "S-98039b0300a1b200"\t# "x"') == "ibnetdiscover"
    assert sniff("gpu[01-04] slots=8\n") == "hostlist"
    assert sniff("\ufeff[root@ufm dgxa100]# ibnetdiscover\nvendid=0x2c9\n") == "ibnetdiscover"
    assert sniff("me@ufm:~$ ibnetdiscover -p\nSW     1 21 0x98039b0300a1b200 4x HDR - SW 2 1 0x98039b0300a1b210 ( 'a' - 'b' )") \
        == "ibnetdiscover"


def test_generator_names_and_cluster_parameters():
    seed = load_cluster("seed")
    assert build_fabric(seed, "fat-tree").kind == "fat-tree"
    assert build_fabric(seed, "dragonfly+").tier_labels[3:] == ("group", "global")
    assert build_fabric(seed, "DF+").kind == "dragonfly+"
    custom = load_cluster(None, num_nodes=64, topology={"kind": "dragonfly+", "num_groups": 4})
    assert custom.topology.kind == "dragonfly+"
    f = build_fabric(custom, "dragonfly+")                                   # the cluster's own parameters:
    assert int(f.node_pod_N.max()) == 1 and int(f.network.positions[2].max()) == 3  # 4 groups, nodes fill 2
    assert build_fabric(custom).kind == "dragonfly+"                         # no --topology: the cluster's kind
    assert build_fabric(custom, "fat-tree").params["spec"]["levels"] == 2    # other kind: its defaults


def test_unknown_names_and_missing_files():
    seed = load_cluster("seed")
    with pytest.raises(InputError, match=r"--topology: unknown topology 'torus' \(known: fat-tree, dragonfly\+, or a "
                                         r"file: generator .toml/.json, Slurm topology.conf"):
        build_fabric(seed, "torus")
    with pytest.raises(InputError, match=r"^nope/topology.conf: --topology: file not found$"):
        build_fabric(seed, "nope/topology.conf")


def test_generator_files():
    seed = load_cluster("seed")
    f = build_fabric(seed, str(DATA / "fat-tree-2to1.toml"))
    assert f.params["shape"]["leaf_down"] == 26 and f.params["file"] == "fat-tree-2to1.toml"
    d = build_fabric(seed, str(DATA / "dragonfly-valiant.toml"))
    assert d.params["spec"]["routing"] == "valiant"


@pytest.mark.parametrize("text, message", [
    ('kind = "torus"\n', "kind: kind must be one of fat-tree, dragonfly+ (got 'torus')"),
    ('kind = "fat-tree"\nradix = 2\n', "radix: Input should be greater than or equal to 4 (got 2)"),
    ('kind = "fat-tree"\nlevels = 4\n', "levels: Input should be 2 or 3 (got 4)"),
    ('kind = "dragonfly+"\nlevels = 3\n', "levels: Extra inputs are not permitted (got 3)"),
])
def test_bad_generator_files(tmp_path, text, message):
    path = tmp_path / "g.toml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        build_fabric(load_cluster("seed"), str(path))
    assert str(err.value) == f"{path}: {message}"


def test_generator_file_refuses_impossible_shapes(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text('kind = "fat-tree"\nlevels = 2\n')
    with pytest.raises(InputError, match=r"topology: a 2-level fat-tree of 40-port switches tops out at 40 leaves x 20 "
                                         r"down ports = 800 endpoints, and 232 nodes x 8 NICs = 1,856 endpoints"):
        build_fabric(load_cluster("seed"), str(path))


def test_host_list():
    f = build_fabric(load_cluster(None, num_nodes=16), str(DATA / "hosts.txt"))
    assert f.hosts[:2] == ("gpu-a01", "gpu-a02") and f.hosts[-1] == "gpu-b06" and f.kind == "hostlist"
    part = build_fabric(load_cluster(None, num_nodes=2, hosts="gpu-b06,gpu-a01"), str(DATA / "hosts.txt"))
    assert part.hosts == ("gpu-b06", "gpu-a01")


@pytest.mark.parametrize("text, message", [
    ("n[1-4] slots=4\n", "line 1: 4 slots, but the cluster has 8 GPUs per node: 'n[1-4] slots=4'"),
    ("n1\nn2:8\nn1\n", "line 3: host 'n1' is listed twice (first at line 1): 'n1'"),
    ("n[1-4\n", "line 1: malformed hostlist (unclosed '[' in hostlist 'n[1-4'): 'n[1-4'"),
    ("n1 cpus=4\n", "line 1: unexpected 'cpus=4' (a host list line is a host or hostlist, optionally with slots=N): "
     "'n1 cpus=4'"),
])
def test_bad_host_lists(tmp_path, text, message):
    path = tmp_path / "hosts"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        build_fabric(load_cluster(None, num_nodes=4), str(path))
    assert str(err.value) == f"{path}: {message}"


def test_rebuild_from_a_plan_record(tmp_path):
    cluster = load_cluster(None, num_nodes=48)
    src = tmp_path / "topology.conf"
    src.write_text((DATA / "ant-tree.topology.conf").read_text())
    f = build_fabric(cluster, str(src))
    again = rebuild_fabric(cluster, f.kind, f.params, search_dirs=(tmp_path,))
    assert (again.node_tier_NN == f.node_tier_NN).all()
    moved = tmp_path / "plan"
    moved.mkdir()
    src.rename(moved / "topology.conf")
    assert rebuild_fabric(cluster, f.kind, f.params, search_dirs=(moved,)).hosts == f.hosts
    (moved / "topology.conf").write_text("SwitchName=s0 Nodes=gpu[001-048]\n")
    with pytest.raises(InputError, match="the plan was made on a different version of this file"):
        rebuild_fabric(cluster, f.kind, f.params, search_dirs=(moved,))
    (moved / "topology.conf").unlink()
    with pytest.raises(InputError, match="the plan was made on topology file topology.conf"):
        rebuild_fabric(cluster, f.kind, f.params, search_dirs=(moved,))
    (tmp_path / "elsewhere").mkdir()
    src = tmp_path / "elsewhere" / "topology.conf"
    src.write_text((DATA / "ant-tree.topology.conf").read_text())
    f = build_fabric(cluster, str(src))
    with pytest.raises(InputError, match="opened only beside the plan or in the current directory"):
        rebuild_fabric(cluster, f.kind, f.params, search_dirs=(moved,))  # never opened outside the plan's dirs
    (moved / "topology.conf").symlink_to(src)
    with pytest.raises(InputError, match="opened only beside the plan"):
        rebuild_fabric(cluster, f.kind, f.params, search_dirs=(moved,))  # nor through a link pointing out
    gen = build_fabric(load_cluster("seed"), "dragonfly+")
    assert np.array_equal(rebuild_fabric(load_cluster("seed"), gen.kind, gen.params).node_pod_N, gen.node_pod_N)
    legacy = rebuild_fabric(load_cluster("seed"), "fat-tree", {"nodes_per_leaf": 20, "leaves_per_pod": 2})
    assert legacy.num_nodes == 232


def test_hosts_are_refused_before_the_solve():
    """Issue 14: a host named twice by --hosts surfaced after the solve as a NIC-count or plan.json message."""
    from moeplace.placement.fabric import cluster_hosts

    with pytest.raises(InputError, match=r"^hosts: hostlist 'gpu\[1-3\],gpu1' names host gpu1 twice \(nodes 0 and 3\)"):
        cluster_hosts(load_cluster(None, num_nodes=4, hosts="gpu[1-3],gpu1"))
    text = (DATA / "rail-hdr-24.ibnetdiscover").read_text().replace("gpu003 mlx5", "gpu$(id) mlx5")
    from moeplace.topologies.ibnet import parse_ibnetdiscover

    imp = parse_ibnetdiscover(text, "bad.ibnet")
    with pytest.raises(InputError, match=r"^bad.ibnet: host name 'gpu\$\(id\)' is not a valid host name"):
        imp.fabric([h for h in imp.hosts if h != "login01"], 8)
