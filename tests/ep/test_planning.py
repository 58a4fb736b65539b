"""`moeplace solve --flow ep --redundant-experts R`: the engines' layout, its files, and one-line refusals."""

from __future__ import annotations

import json

import numpy as np

from moeplace.ep.planning import item_gpu_of, valid_redundant
from tests.test_cli import TINY, run

EP = ["--model", TINY, "--nodes", "2", "--gpus-per-node", "4", "--flow", "ep"]


def test_redundant_plan_gives_every_gpu_the_same_slots_of_every_layer(tmp_path, capsys):
    code, out, err = run(["solve", *EP, "--redundant-experts", "8", "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    plan = json.loads((tmp_path / "p" / "plan.json").read_text())
    count = {}
    for p in plan["placements"]:
        count[(p["rank"], p["layer"])] = count.get((p["rank"], p["layer"]), 0) + 1
    assert set(count.values()) == {2} and len(count) == 8 * 4           # (8 + 8) / 8 GPUs = 2 slots, 4 layers
    assert plan["solver"]["name"] == "ep-rebalance" and plan["solver"]["bound"] == 0.0
    rec = json.loads((tmp_path / "p" / "engines" / "vllm-eplb-initial-mapping.jsonl").read_text())
    assert rec["num_redundant_experts"] == 8 and rec["num_slots"] == 16
    vmap = json.loads((tmp_path / "p" / "engines" / "vllm-initial-expert-map.json").read_text())
    for ml, row in enumerate(vmap):
        assert rec["initial_global_assignments"][str(ml)] == row
        for r in range(8):
            want = sorted(p["expert"] for p in plan["placements"] if p["rank"] == r and p["moe_layer"] == ml)
            assert sorted(row[2 * r:2 * r + 2]) == want
    assert run(["check", str(tmp_path / "p")], capsys)[0] == 0


def test_layouts_the_engines_cannot_run_are_refused(tmp_path, capsys):
    code, _, err = run(["solve", *EP, "--redundant-experts", "3", "--out", str(tmp_path / "a")], capsys)
    assert code == 2
    assert err.strip() == ("error: --redundant-experts: 8 experts + 3 redundant = 11 slots per layer is not a multiple "
                           "of the EP size 8 GPUs (every GPU holds the same number of slots of every layer); try "
                           "--redundant-experts 8")
    code, _, err = run(["solve", *EP[:-2], "--redundant-experts", "8", "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and "use --flow ep (got --flow chain)" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_auto_picks_a_valid_r(tmp_path, capsys):
    code, out, err = run(["solve", *EP, "--redundant-experts", "auto", "--json", "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    plan = json.loads((tmp_path / "p" / "plan.json").read_text())
    R = json.loads((tmp_path / "p" / "run.json").read_text())["details"]["redundant_experts"]
    assert R in valid_redundant(8, 8, 8)
    assert len(plan["placements"]) == 4 * (8 + R)


def test_item_numbering_round_trips():
    phy = np.array([[0, 1, 2, 0], [2, 2, 1, 0]])
    copies = np.array([[2, 1, 1], [1, 1, 2]])
    gpu = item_gpu_of(phy, copies, 2)
    assert gpu.tolist()[:6] == [0, 0, 1, 1, 1, 0] and sorted(gpu.tolist()[6:]) == [0, 1]
