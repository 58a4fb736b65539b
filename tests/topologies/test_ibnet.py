"""ibnetdiscover import: the real-format sample, host grouping, leaf/spine inference, and bad files."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.errors import InputError
from moeplace.placement.builder import build_fabric
from moeplace.placement.presets import load_cluster
from moeplace.topologies.base import TIER_LEAF, TIER_POD
from moeplace.topologies.ibnet import parse_ibnetdiscover
from tests.topologies.helpers import DATA, nx_host_hops

SAMPLE = DATA / "rail-hdr-24.ibnetdiscover"
GPUS = "gpu[001-024]"


def sample_fabric(**kw):
    return build_fabric(load_cluster(None, num_nodes=24, hosts=GPUS, **kw), str(SAMPLE))


def test_sample_hosts_nics_and_switches():
    imp = parse_ibnetdiscover(SAMPLE.read_text(), "s")
    assert imp.hosts[0] == "gpu001" and imp.hosts[-1] == "login01" and len(imp.hosts) == 25
    f = sample_fabric()
    net = f.network
    assert f.nics_per_node == 8 and net.num_switches == 22
    # NIC r of a host is its mlx5_r, on rail leaf r of its scalable unit
    assert [net.switches[s] for s in net.nic_switch_NR[0]] == [f"su1-leaf{r}" for r in range(1, 9)]
    assert [net.switches[s] for s in net.nic_switch_NR[23]] == [f"su2-leaf{r}" for r in range(1, 9)]
    roles = dict(zip(net.switches, net.switch_role_S))
    assert roles["su1-leaf1"] == "leaf" and roles["spine06"] == "spine"
    assert np.bincount(f.node_leaf_N).tolist() == [12, 12] and f.node_pod_N.tolist() == [0] * 24
    assert f.node_tier_NN[0, 11] == TIER_LEAF and f.node_tier_NN[0, 12] == TIER_POD
    assert (f.node_hops_NN == nx_host_hops(f)).all()


def test_parallel_cables_and_a_degraded_link():
    net = sample_fabric().network
    caps = {(net.vertex_name(int(a)), net.vertex_name(int(b))): (int(c), float(g)) for a, b, c, g in
            zip(net.link_a_L, net.link_b_L, net.link_count_L, net.link_gbps_L)}
    assert caps[("su1-leaf1", "spine01")] == (2, 400.0)
    assert caps[("su2-leaf4", "spine03")] == (2, 300.0)       # one HDR cable and one trained down to EDR


def test_host_count_must_match_or_be_picked():
    cluster = load_cluster(None, num_nodes=24)
    with pytest.raises(InputError) as err:
        build_fabric(cluster, str(SAMPLE))
    assert str(err.value) == (f"{SAMPLE}: names 25 hosts and the cluster has 24 nodes: give --nodes 25, or pick 24 "
                              f"of them with --hosts")
    with pytest.raises(InputError, match="host 'gpu099' is not in the file"):
        build_fabric(load_cluster(None, num_nodes=2, hosts="gpu001,gpu099"), str(SAMPLE))
    with pytest.raises(InputError, match="hosts have different NIC counts: gpu001 has 8, login01 has 1"):
        build_fabric(load_cluster(None, num_nodes=2, hosts="gpu001,login01"), str(SAMPLE))
    with pytest.raises(InputError, match="its hosts have 8 NICs of 200 Gb/s, the cluster 4 of 200 Gb/s"):
        sample_fabric(nics_per_node=4)


def _lines():
    return SAMPLE.read_text().splitlines()


def _error(text: str) -> str:
    with pytest.raises(InputError) as err:
        parse_ibnetdiscover(text, "ib.txt")
    return str(err.value)


def test_truncated_mid_line():
    lines = _lines()
    cut = "\n".join(lines[:40] + [lines[40][:15]])
    assert _error(cut) == f"ib.txt: line 41: unrecognised line (the file looks truncated): {lines[40][:15]!r}"


def test_truncated_at_a_block_boundary():
    lines = _lines()
    end = lines.index("vendid=0x2c9", 500)
    msg = _error("\n".join(lines[:end]))
    assert msg.startswith("ib.txt: line 11: H-1c34da0300786a00 has no block of its own (the file is truncated or "
                          "incomplete; it ends at line")


def test_unknown_line():
    lines = _lines()
    lines.insert(12, "[3]\tsomething odd")
    assert _error("\n".join(lines)) == ('ib.txt: line 13: unrecognised line (port [3] has no peer such as '
                                       '"S-<guid>"[port] after it): \'[3]\\tsomething odd\'')


def test_links_must_agree_from_both_ends():
    text = SAMPLE.read_text().replace('[21]\t"S-98039b0300a1b210"[1]\t', '[21]\t"S-98039b0300a1b210"[5]\t', 1)
    msg = _error(text)
    assert "S-98039b0300a1b200[21] -> S-98039b0300a1b210[5], but line" in msg
    assert msg.endswith("says S-98039b0300a1b210[5] -> S-98039b0300a1b202[21]: "
                        "'[21]\\t\"S-98039b0300a1b210\"[5]\\t\\t# \"MF0;spine01:MQM8700/U1\" lid 17 4xHDR'")


def test_ports_beyond_the_switch_and_routers():
    text = SAMPLE.read_text().replace("[32]\t", "[45]\t", 1)
    assert "port 45 of S-98039b0300a1b200, which has 41 ports" in _error(text)
    assert "routers (Rt) are not supported" in _error('Rt\t2 "R-0002c9030000aaaa"\t\t# "router"\n')


def test_missing_speed_and_missing_description():
    text = SAMPLE.read_text().replace(" lid 23 4xHDR", " lid 23", 1)
    assert "no link width and speed such as 4xHDR at the end of the line" in _error(text)
    text = SAMPLE.read_text().replace('Ca\t1 "H-1c34da0300786a00"\t\t# "gpu001 mlx5_0"', 'Ca\t1 "H-1c34da0300786a00"')
    assert "H-1c34da0300786a00 has no node description to name its host" in _error(text)
