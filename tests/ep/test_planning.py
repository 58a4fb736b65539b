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


def test_replan_with_a_move_budget_writes_the_migration(tmp_path, capsys):
    old = str(tmp_path / "old")
    assert run(["solve", *EP, "--redundant-experts", "8", "--out", old], capsys)[0] == 0
    new = tmp_path / "new"
    code, _, err = run(["solve", *EP, "--redundant-experts", "8", "--seed", "5", "--from", old, "--max-moves", "6",
                        "--out", str(new)], capsys)
    assert code == 0, err
    doc = json.loads((new / "migration.json").read_text())
    assert 0 < doc["num_moves"] <= 6 and doc["bytes_moved"] == doc["num_moves"] * 3 * 256 * 128 * 2
    before = json.loads((tmp_path / "old" / "plan.json").read_text())["placements"]
    after = json.loads((new / "plan.json").read_text())["placements"]
    held = {}
    for p in before:
        held.setdefault((p["rank"], p["moe_layer"]), []).append(p["expert"])
    for m in doc["moves"]:
        assert m["expert"] in held[(m["from_rank"], m["moe_layer"])]
        assert any(p["rank"] == m["to_rank"] and p["moe_layer"] == m["moe_layer"] and p["expert"] == m["expert"]
                   for p in after)
    changed = sum(sorted(p["expert"] for p in before if (p["rank"], p["moe_layer"]) == key)
                  != sorted(p["expert"] for p in after if (p["rank"], p["moe_layer"]) == key) for key in held)
    assert changed <= doc["num_moves"]
    assert run(["check", str(new)], capsys)[0] == 0


def test_decode_counts_the_weight_read_floor_so_it_wants_fewer_copies():
    from moeplace.ep.planning import phase_time
    from moeplace.ep.rebalance import best_balance

    rng = np.random.default_rng(0)
    w = np.exp(rng.standard_normal((4, 256)))
    plain, spread = best_balance(w, 256, 1, 1, 32), best_balance(w, 288, 1, 1, 32)
    assert phase_time(w, spread, 32, 8, "prefill") < 0.97 * phase_time(w, plain, 32, 8, "prefill")
    gain_decode = phase_time(w, spread, 32, 8, "decode") / phase_time(w, plain, 32, 8, "decode")
    gain_prefill = phase_time(w, spread, 32, 8, "prefill") / phase_time(w, plain, 32, 8, "prefill")
    assert gain_decode > gain_prefill


def test_phase_is_recorded_and_needs_an_ep_layout(tmp_path, capsys):
    code, _, err = run(["solve", *EP, "--redundant-experts", "auto", "--phase", "decode", "--out",
                        str(tmp_path / "d")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "d" / "run.json").read_text())["details"]["phase"] == "decode"
    code, _, err = run(["solve", *EP, "--phase", "decode", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "--phase" in err and "--redundant-experts" in err


def test_predict_says_the_cost_model_does_not_model_copies_yet(tmp_path, capsys):
    assert run(["solve", *EP, "--redundant-experts", "8", "--out", str(tmp_path / "p")], capsys)[0] == 0
    code, _, err = run(["predict", str(tmp_path / "p")], capsys)
    assert code == 2 and "32 redundant expert copies, which the cost model does not model yet" in err
