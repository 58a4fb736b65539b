"""`moeplace topology ...` and `moeplace solve --topology FILE` end to end, with exact error lines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moeplace.placement.cost import evaluate
from moeplace.placement.presets import load_cluster, load_model
from moeplace.planner import PlanRequest, make_problem
from tests.conftest import REPO
from tests.topologies.helpers import DATA
from tests.conftest import run_cli as run

TINY = str(REPO / "examples" / "tiny.toml")
IB = str(DATA / "rail-hdr-24.ibnetdiscover")
CONF = str(DATA / "ant-tree.topology.conf")


def test_show_seed(capsys):
    code, out, err = run(["topology", "show", "--json"], capsys)
    assert code == 0, err
    s = json.loads(out)
    assert (s["nodes"], s["gpus"], s["leaf_units"], s["pods"], s["diameter_hops"]) == (232, 1856, 12, 6, 6)
    assert s["bisection_gbps"] == 185600.0
    code, out, _ = run(["topology", "show", "--no-bisection"], capsys)
    assert out.startswith("rail-optimized fat-tree, 3 levels of 40-port switches (1:1, 1:1): 232 nodes")
    assert "core │     44,800 │    6 │       0.80" in out


def test_route(capsys):
    code, out, err = run(["topology", "route", "node001:3", "node002:5"], capsys)
    assert code == 0, err
    assert out.splitlines() == [
        "node001:3 -> NVLink (PXN) -> node001:5 -> NIC 5 -> leaf-su01-r5 -> NIC 5 -> node002:5",
        "tier leaf; 1 NVLink hop(s), 2 network links, 1 equal-cost path(s), network latency 0.18 us"]
    code, _, err = run(["topology", "route", "node001:9", "0"], capsys)
    assert (code, err) == (2, "error: SRC: expected HOST:LOCAL_GPU or a global GPU index, got 'node001:9'\n")


def test_draw_png_and_svg(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "fabric.png"
    assert run(["topology", "draw", "--out", str(png)], capsys)[0] == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run(["topology", "draw", "--out", str(png)], capsys)
    assert (code, err) == (2, f"error: {png}: exists (use --force to replace it)\n")
    svg = tmp_path / "df.svg"
    assert run(["topology", "draw", "--topology", "dragonfly+", "--out", str(svg)], capsys)[0] == 0
    text = svg.read_text()
    assert text.startswith("<?xml") and "group 6" in text and "20 spines" in text
    assert "global links: 80 cables between every pair of groups (16.0 Tb/s per pair)" in text
    code, _, err = run(["topology", "draw", "--out", str(tmp_path / "f.jpg")], capsys)
    jpg = tmp_path / "f.jpg"
    assert (code, err) == (2, f"error: {jpg}: unsupported picture type '.jpg' (use .png, .svg or .pdf)\n")


def test_unequal_global_links_are_labelled_with_units_above_the_arcs():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from moeplace.topologies.draw import _label_arcs

    ax = Figure().add_subplot()
    ax.plot([0, 1], [0, 1], zorder=1)
    _label_arcs(ax, [(0.5, 1.0, 80, 16000.0), (1.5, 1.2, 40, 8000.0)], 3.0)
    texts = sorted((t.get_text(), t.get_zorder()) for t in ax.texts)
    assert texts == [("40 cables, 8.0 Tb/s", 4), ("80 cables, 16.0 Tb/s", 4)]
    assert all(t.get_bbox_patch() is not None for t in ax.texts)


def test_draw_is_deterministic(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    for name in ("a.svg", "b.svg"):
        assert run(["topology", "draw", "--nodes", "40", "--out", str(tmp_path / name)], capsys)[0] == 0
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()


def test_export_then_import(tmp_path, capsys):
    conf = tmp_path / "topology.conf"
    assert run(["topology", "export", "--out", str(conf)], capsys)[0] == 0
    assert "SwitchName=su12 Nodes=node[221-232]" in conf.read_text()
    _, a, _ = run(["topology", "show", "--json", "--no-bisection"], capsys)
    _, b, _ = run(["topology", "show", "--json", "--no-bisection", "--topology", str(conf)], capsys)
    assert json.loads(a)["tiers"] == json.loads(b)["tiers"]


@pytest.mark.parametrize("topology, extra", [
    (IB, ["--nodes", "24", "--hosts", "gpu[001-024]"]),
    (CONF, ["--nodes", "48"]),
])
def test_solve_on_an_imported_fabric(tmp_path, capsys, topology, extra):
    out_dir = tmp_path / "plan"
    code, out, err = run(["solve", "--model", TINY, "--topology", topology, *extra, "--work-limit", "300",
                          "--out", str(out_dir)], capsys)
    assert code == 0, err
    plan = json.loads((out_dir / "plan.json").read_text())
    assert plan["topology"]["params"]["file"] == topology.rsplit("/", 1)[1]
    assert plan["placements"][0]["host"] == "gpu001"
    code, out, err = run(["evaluate", str(out_dir), "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["metrics"]["objective"] == pytest.approx(plan["cost"]["objective"])
    code, out, err = run(["topology", "loads", str(out_dir), "--json", "--tokens-per-s", "1e6"], capsys)
    assert code == 0, err
    loads = json.loads(out)
    assert loads["network_bytes_per_token"] == pytest.approx(plan["cost"]["cross_node_bytes_per_token"])
    assert 0 < loads["max_link_utilization"] == pytest.approx(1e6 / loads["saturation_tokens_per_s"])


def test_topology_changes_the_objective():
    model = load_model(TINY)
    cluster = load_cluster(None, num_nodes=48)
    objectives = set()
    for topo in ("fat-tree", "dragonfly+", str(DATA / "fat-tree-2to1.toml"), CONF):
        problem, _ = make_problem(PlanRequest(model=model, cluster=cluster, topology=topo))
        spread = np.arange(problem.num_items) * 11 % problem.num_gpus      # one expert per GPU, across nodes
        objectives.add(round(evaluate(problem, spread).objective, 6))
    assert len(objectives) == 4


@pytest.mark.parametrize("files, argv, message", [
    ({"t.conf": "SwitchName=s0 Nodes=n[1-2]\nSwitchName=top Switches=s[0-1]\n"}, ["--nodes", "2"],
     "{d}/t.conf: line 2: undefined switch 's1' in Switches=s[0-1]: 'SwitchName=top Switches=s[0-1]'"),
    ({"t.conf": "SwitchName=s0 Nodes=n[1-2]\nSwitchName=s1 Switches=s2\nSwitchName=s2 Switches=s1\n"}, ["--nodes", "2"],
     "{d}/t.conf: line 3: cycle in the switch tree: s1 -> s2 -> s1: 'SwitchName=s2 Switches=s1'"),
    ({"t.conf": "SwitchName=s0 Nodes=n[1-2]\nSwitchName=s1 Nodes=n[2-3]\n"}, ["--nodes", "3"],
     "{d}/t.conf: line 2: node 'n2' is under two leaf switches: 's0' (line 1) and 's1': 'SwitchName=s1 Nodes=n[2-3]'"),
    ({"t.conf": "SwitchName=s0 Nodes=n[1-2,]\n"}, ["--nodes", "2"],
     "{d}/t.conf: line 1: malformed hostlist Nodes=n[1-2,] (bad range '' in hostlist 'n[1-2,]'): "
     "'SwitchName=s0 Nodes=n[1-2,]'"),
    ({"ib.txt": "vendid=0x2c9\nSwitch\t41 \"S-0001\"\t\t# \"MF0;l1:MQM8700/U1\" base port 0 lid 1 lmc 0\n[1]\t\"H-00"},
     ["--nodes", "1"], "{d}/ib.txt: line 3: unrecognised line (the file looks truncated): '[1]\\t\"H-00'"),
    ({"ib.txt": "vendid=0x2c9\nSwitchBoard 41\n"}, ["--nodes", "1"],
     "{d}/ib.txt: line 2: unrecognised line (the file looks truncated): 'SwitchBoard 41'"),
    ({"g.toml": "kind = \"fat-tree\"\nlevels = 2\n"}, [],
     "topology: a 2-level fat-tree of 40-port switches tops out at 40 leaves x 20 down ports = 800 endpoints, and "
     "232 nodes x 8 NICs = 1,856 endpoints need 96 leaves (12 rail groups of 8 leaves); use levels = 3"),
])
def test_bad_input_is_one_line_with_exit_2(tmp_path, capsys, files, argv, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    topo = str(tmp_path / next(iter(files)))
    code, out, err = run(["topology", "show", "--topology", topo, *argv], capsys)
    assert (code, out) == (2, "")
    assert err == f"error: {message.format(d=tmp_path)}\n"
    code, _, err2 = run(["solve", "--model", TINY, "--topology", topo, *argv, "--out", str(tmp_path / "p")], capsys)
    assert (code, err2) == (2, err)
    assert not (tmp_path / "p").exists()
