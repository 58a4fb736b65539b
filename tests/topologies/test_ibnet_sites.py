"""ibnetdiscover files as sites have them: SHARP aggregation nodes, DGX hosts of 8 HCAs, a 3-level SuperPOD,
an NDR rail-optimized pod named by a node name map, `-p` dumps, loopbacks, BOMs and captured prompts.

The samples come from `tests/data/topologies/gen_ibnet.py`: the small ones are committed, the large ones
(a 184-switch SuperPOD, a 128-node NDR pod) are written here from the same generator.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from moeplace.errors import InputError
from moeplace.placement.builder import build_fabric
from moeplace.placement.fabric import sniff
from moeplace.placement.presets import load_cluster
from moeplace.topologies.base import TIER_CORE, TIER_LEAF, TIER_POD
from moeplace.topologies.ibnet import parse_ibnetdiscover
from moeplace.topologies.ibnet_names import level_hint, model_ports, parse_node_name_map
from moeplace.topologies.wiring import Wiring
from tests.topologies.helpers import DATA

_spec = importlib.util.spec_from_file_location("gen_ibnet", DATA / "gen_ibnet.py")
gen = sys.modules.setdefault("gen_ibnet", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(gen)

NDR = DATA / "ndr-pod-2x8.ibnetdiscover"
NDR_MAP = DATA / "ndr-pod-2x8.node-name-map"
LASSEN = DATA / "lassen-ports.ibnetdiscover"
PROMPT = DATA / "prompt-bom.ibnetdiscover"


def _error(text: str, **kw) -> str:
    with pytest.raises(InputError) as err:
        parse_ibnetdiscover(text, "ib.txt", **kw)
    return str(err.value)


def test_committed_samples_are_what_the_generator_writes():
    for file, (kind, kw) in gen.SAMPLES.items():
        text, names = gen.render(kind, **kw)
        assert (DATA / file).read_text(encoding="utf-8") == text, file
        if names:
            assert (DATA / file).with_suffix(".node-name-map").read_text() == names


@pytest.fixture(scope="module")
def superpod(tmp_path_factory):
    path = tmp_path_factory.mktemp("ib") / "superpod.ibnetdiscover"
    path.write_text(gen.render("superpod")[0])
    return path


def test_superpod_three_levels_sharp_and_dgx_hosts(superpod):
    imp = parse_ibnetdiscover(superpod.read_text(), "s")
    assert imp.summary == ("ibnetdiscover: 160 hosts (1280 HCA ports, 8 per host), 184 switches (64 leaf, 80 spine, "
                           "40 core), 960 switch pairs cabled, rail-optimized (8 units of 8 rail leaves); 184 "
                           "switch-embedded CAs (SHARP) left out; 19 loopback cables ignored")
    assert imp.hosts[:2] == ["dgx-001", "dgx-002"] and "Mellanox" not in imp.hosts
    f = build_fabric(load_cluster(None, num_nodes=160), str(superpod))
    net = f.network
    assert set(net.switch_ports_S.tolist()) == {40}                # port 41 is the SHARP node's, port 0 no port
    roles = dict(zip(net.switches, net.switch_role_S))
    assert (roles["lf01"], roles["sp01"], roles["ss01"]) == ("leaf", "spine", "core")
    # NIC r of dgx-001 is its r-th HCA (mlx5_0-3, 6-9) on rail leaf r of unit 1
    assert [net.switches[s] for s in net.nic_switch_NR[0]] == [f"lf0{r}" for r in range(1, 9)]
    assert np.bincount(f.node_leaf_N).tolist() == [20] * 8
    assert f.node_tier_NN[0, 19] == TIER_LEAF and f.node_tier_NN[0, 20] == TIER_CORE
    assert f.node_hops_NN[0, 20] == 6


def test_superpod_levels_come_from_the_cabling_not_the_names(superpod):
    text = superpod.read_text()
    for prefix in ("lf", "sp", "ss"):
        text = text.replace(f"MF0;{prefix}", "MF0;Quantum-")
    w = parse_ibnetdiscover(text, "s").wiring
    assert sorted(w.roles.count(r) for r in ("leaf", "spine", "core")) == [40, 64, 80]
    assert level_hint("lf07") == 1 and level_hint("su1-r3-leaf") == 1 and level_hint("sp12") == 2
    assert level_hint("ss03") == 3 and level_hint("Quantum-07") == 0


def test_a_leaf_without_hosts_is_a_leaf_by_its_name(superpod):
    lines = superpod.read_text().splitlines()
    start = lines.index('Switch\t41 "S-98039b0300a10000"\t\t# "MF0;lf01:MQM8700/U1" enhanced port 0 lid 1 lmc 0')
    # unplug the 20 hosts of lf01 (and their CAs' ports, so both ends agree): lf01 keeps its spine cables
    hcas = [ln.split('"')[1] for ln in lines[start + 1:start + 21]]
    keep = [ln for ln in lines[:start + 1] + lines[start + 21:]]
    text = "\n".join(keep)
    for h in hcas:
        text = text.replace(f'Ca\t1 "{h}"', f"# {h}")
    text = "\n".join(ln for ln in text.splitlines() if not any(f'"S-98039b0300a10000"[{p}]\t' in ln
                                                            for p in range(1, 21)))
    w = parse_ibnetdiscover(text, "s").wiring
    assert w.roles[w.index["lf01"]] == "leaf" and w.levels[w.index["lf01"]] == 1


def test_ndr_rail_pod_named_by_a_node_name_map():
    names = parse_node_name_map(NDR_MAP.read_text(), str(NDR_MAP))
    imp = parse_ibnetdiscover(NDR.read_text(), "ndr", name_map=names)
    assert imp.hosts == [f"dgx-h100-{n:03d}" for n in range(1, 17)]
    assert "48 switches (16 leaf, 32 spine)" in imp.summary
    assert "rail-optimized (2 units of 8 rail leaves)" in imp.summary
    assert "4 loopback cables ignored" in imp.summary
    cluster = load_cluster("h100-sxm", num_nodes=16, node_name_map=str(NDR_MAP))
    f = build_fabric(cluster, str(NDR))
    net = f.network
    assert set(net.switch_ports_S.tolist()) == {64} and f.nics_per_node == 8
    assert [net.switches[s] for s in net.nic_switch_NR[9]] == [f"su2-r{r}-leaf" for r in range(8)]
    assert f.node_tier_NN[0, 7] == TIER_LEAF and f.node_tier_NN[0, 8] == TIER_POD
    assert f.params["node_name_map"]["file"] == NDR_MAP.name


def test_ndr_pod_at_scale(tmp_path):
    text, names = gen.render("ndr-pod")
    imp = parse_ibnetdiscover(text, "ndr", name_map=parse_node_name_map(names, "map"))
    assert len(imp.hosts) == 128 and "(32 leaf, 32 spine)" in imp.summary
    assert "rail-optimized (4 units of 8 rail leaves)" in imp.summary


def test_unnamed_hcas_without_a_map_are_refused_naming_the_line():
    text = NDR.read_text()
    lineno = text.splitlines().index('Ca\t1 "H-946dae0300000100"\t\t# "MT4129 ConnectX-7 Mellanox Technologies"') + 1
    assert _error(text) == (f"ib.txt: line {lineno}: CA H-946dae0300000100 names no host in its description 'MT4129 "
                            f"ConnectX-7 Mellanox Technologies' (and 127 more CAs): name their hosts with "
                            f"--node-name-map FILE: 'Ca\\t1 \"H-946dae0300000100\"\\t\\t# \"MT4129 ConnectX-7 "
                            f"Mellanox Technologies\"'")
    names = parse_node_name_map(NDR_MAP.read_text(), "m")
    del names[0x946dae0300000805]
    msg = _error(text, name_map=names, map_source="site.map")
    assert "CA H-946dae0300000805 names no host in its description" in msg
    assert "not in the node name map site.map" in msg


def test_node_name_map_format():
    text = '# site\n\n0x0002c903000e0b72 "node01 HCA-1"\n0002c903000e0b73  "node02 HCA-1"  # two\n'
    assert parse_node_name_map(text, "m") == {0x2c903000e0b72: "node01 HCA-1", 0x2c903000e0b73: "node02 HCA-1"}
    with pytest.raises(InputError, match=r"^m: line 2: GUID 0x0002c903000e0b72 is named twice \(first at line 1\)"):
        parse_node_name_map('0x2c903000e0b72 "a"\n0x2c903000e0b72 "b"\n', "m")
    with pytest.raises(InputError, match=r"^m: line 1: expected a GUID and a quoted name, such as 0x1c34da0300786a00"):
        parse_node_name_map('H-0002c903000e0b72 "a"\n', "m")


def test_ports_layout_reads_as_the_default_layout():
    p = parse_ibnetdiscover(LASSEN.read_text(), "p")
    net, first = gen.small_two_level(6, 2, "lassen", False)
    d = parse_ibnetdiscover(gen.default_layout(net, first), "d")
    assert p.summary.startswith("ibnetdiscover -p: 12 hosts (24 HCA ports, 2 per host), 4 switches (2 leaf, 2 spine)")
    assert d.summary == p.summary.replace("ibnetdiscover -p:", "ibnetdiscover:")
    assert p.hosts == d.hosts == [f"lassen{n:02d}" for n in range(1, 13)]
    assert p.wiring.nics == d.wiring.nics and p.wiring.cables == d.wiring.cables
    assert p.wiring.ports == d.wiring.ports == [40] * 4                # the model's 40 ports, no SHARP port
    cluster = load_cluster(None, num_nodes=12, gpus_per_node=4, nics_per_node=2)
    assert sniff(LASSEN.read_text()) == "ibnetdiscover"
    assert build_fabric(cluster, str(LASSEN)).network.num_switches == 4


def test_bom_prompt_lines_and_a_loopback():
    text = PROMPT.read_text(encoding="utf-8")
    assert text.startswith("\ufeff[root@ufm dgxa100]# ibnetdiscover\n") and sniff(text) == "ibnetdiscover"
    f = build_fabric(load_cluster(None, num_nodes=8, nics_per_node=1), str(PROMPT))
    assert f.description.endswith("; 4 switch-embedded CAs (SHARP) left out; 1 loopback cable ignored")
    assert f.hosts[:2] == ("node01", "node02")
    for prompt in ("admin@ufm-01:~$ ibnetdiscover > fabric.txt", "root@ufm# ibnetdiscover"):
        assert sniff(f"{prompt}\nvendid=0x2c9\n") == "ibnetdiscover"


def test_loopbacks_are_counted_not_asserted():
    w = Wiring()
    s = w.add_switch("leaf01", ports=40)
    w.connect(s, s, gbps=200.0, latency_us=0.025)
    assert (w.loopbacks, w.cables) == (1, {})


def test_embedded_cas_by_port_and_system_image():
    text = LASSEN.read_text().replace("'Mellanox Technologies Aggregation Node'", "'MT4123 ConnectX6 Mellanox'")
    assert parse_ibnetdiscover(text, "p").hosts[0] == "lassen01"        # unnamed CA on internal port 41
    net, first = gen.small_two_level(2, 1, "n", False)
    mgmt = net.node("CA", 0x0c42a10300b300f0, "mgmt controller", 1, 0x101b, sysimg=net.nodes[0].sysimg)
    net.cable(net.nodes[0], 18, mgmt, 1)
    assert "mgmt" not in parse_ibnetdiscover(gen.default_layout(net, first), "d").hosts
    assert model_ports("MF0;x:MQM9700/U1") == 64 and model_ports("MF0;x:MQM8790/U1") == 40


@pytest.mark.parametrize("old, new, message", [
    ('[21]\t"S-0c42a10300b31000"[1]', '[21](21)\t"S-0c42a10300b31000"[1]',
     "'(21)' after port [21] of a switch: ibnetdiscover writes a GUID there only on CA ports (ibdiagnet-style port "
     "labels are not read)"),
    ('[1]\t"H-043f720300000100"[1]', '[1]\t"H-b8cef60300xxxxxx"[1]',
     "unrecognised line (GUID H-b8cef60300xxxxxx is not hexadecimal (hand-edited?))"),
    ('[1]\t"H-043f720300000100"[1]', '[1]\t"H-043f720300000100"',
     "unrecognised line (no port number [N] after the peer H-043f720300000100)"),
    ('[1]\t"H-043f720300000100"[1]', '[x1]\t"H-043f720300000100"[1]', "unrecognised line (port [x1] is not a number)"),
    ('[1]\t"H-043f720300000100"[1]', 'lid 12 4xHDR', "unrecognised line (not ibnetdiscover output: expected a "
     "vendid=/devid=/...guid= header, a Switch or Ca line, or a [port] line)"),
])
def test_refusals_say_what_is_wrong_with_the_line(old, new, message):
    text = PROMPT.read_text(encoding="utf-8")
    assert old in text
    bad = text.replace(old, new, 1)
    lineno = bad.splitlines().index(next(ln for ln in bad.splitlines() if ln.startswith(new))) + 1
    assert _error(bad).startswith(f"ib.txt: line {lineno}: {message}: ")


def test_ports_layout_refusals():
    lines = LASSEN.read_text().splitlines()
    cut = "\n".join(lines[:10] + [lines[10][:30]] + lines[11:])
    assert _error(cut) == (f"ib.txt: line 11: unrecognised line (expected TYPE LID PORT 0xGUID 4x HDR - TYPE LID PORT "
                           f"0xGUID ( 'name' - 'name' )): {lines[10][:30]!r}")
    assert "line 2: unknown link speed 'ZDR' (expected SDR ... XDR)" in _error(LASSEN.read_text().replace(
        "4x HDR", "4x ZDR", 1))
    assert "line 4: a node-block line in a -p (one line per port) file: 'vendid=0x2c9'" in _error(
        "\n".join(lines[:3] + ["vendid=0x2c9"] + lines[3:]))
    one_sided = "\n".join(ln for ln in lines if not ln.startswith("SW     7  1 "))
    assert "has no port 1" in _error(one_sided) or "lists no port 1" in _error(one_sided)


def test_cli_node_name_map(tmp_path, capsys):
    from tests.topologies.test_cli import TINY, run

    code, out, err = run(["topology", "show", "--json", "--no-bisection", "--cluster", "h100-sxm", "--nodes", "16",
                          "--topology", str(NDR), "--node-name-map", str(NDR_MAP)], capsys)
    assert code == 0, err
    assert json.loads(out)["nodes"] == 16
    code, _, err = run(["topology", "show", "--node-name-map", str(NDR_MAP)], capsys)
    assert (code, err) == (2, "error: --node-name-map: names the nodes of ibnetdiscover output, and --topology "
                              "fat-tree is generated\n")
    plan = tmp_path / "plan"
    code, out, err = run(["solve", "--model", TINY, "--cluster", "h100-sxm", "--nodes", "16", "--topology", str(NDR),
                          "--node-name-map", str(NDR_MAP), "--work-limit", "300", "--out", str(plan)], capsys)
    assert code == 0, err
    record = json.loads((plan / "plan.json").read_text())
    assert record["placements"][0]["host"] == "dgx-h100-001"
    assert record["topology"]["params"]["node_name_map"]["file"] == NDR_MAP.name
    code, out, err = run(["evaluate", str(plan), "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["metrics"]["objective"] == pytest.approx(record["cost"]["objective"])


def test_rail_planes_without_pxn_have_no_path():
    from moeplace.topologies.gpuview import gpu_route
    from moeplace.topologies.routing import link_loads

    f = build_fabric(load_cluster("h100-sxm", num_nodes=16, node_name_map=str(NDR_MAP)), str(NDR))
    assert gpu_route(f, 3, 11 * 8 + 5)["tier"] == "pod"                 # PXN: NVLink to GPU 5, then rail 5
    with pytest.raises(InputError, match=r"^no network path from dgx-h100-001:3 \(NIC 3, su1-r3-leaf\) to "
                                         r"dgx-h100-012:5 \(NIC 5, su2-r5-leaf\): the rails are separate"):
        gpu_route(f, 3, 11 * 8 + 5, pxn=False)
    with pytest.raises(InputError, match="no path to its destination"):
        link_loads(f, np.array([3]), np.array([11 * 8 + 5]), np.array([1.0]), pxn=False)


def test_a_name_map_only_names_ibnetdiscover_nodes():
    cluster = load_cluster(None, num_nodes=4, node_name_map=str(NDR_MAP))
    with pytest.raises(InputError, match=r"hosts.txt: --node-name-map names the nodes of ibnetdiscover output, and "
                                         r"this is a hostlist file$"):
        build_fabric(cluster, str(DATA / "hosts.txt"))
    with pytest.raises(InputError, match=r"^nope.map: --node-name-map: file not found$"):
        build_fabric(load_cluster(None, num_nodes=16, node_name_map="nope.map"), str(NDR))


def test_ports_layout_with_a_name_map_by_node_guid():
    text = LASSEN.read_text()
    for n in range(1, 13):
        for r in range(2):
            text = text.replace(f"'lassen{n:02d} mlx5_{r}'", "'MT4123 ConnectX6 Mellanox Technologies'")
    assert "names no host" in _error(text)
    # a -p file has port GUIDs; a map entry matches one, or the node GUID (ConnectX-3 style: port 1 = node + 1)
    names = {0x043f720300000000 + (n << 8) + r - (r == 0): f"lassen{n:02d} mlx5_{r}" for n in range(1, 13)
             for r in range(2)}
    assert parse_ibnetdiscover(text, "p", name_map=names).hosts == [f"lassen{n:02d}" for n in range(1, 13)]
