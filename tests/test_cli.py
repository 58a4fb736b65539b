"""The CLI end to end: outputs, determinism, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import REPO
from tests.conftest import run_cli as run

TINY = str(REPO / "examples" / "tiny.toml")
FLAME = str(REPO / "examples" / "flame-moe-290m.toml")
SMALL = ["--model", TINY, "--nodes", "4", "--gpus-per-node", "8", "--work-limit", "3000"]


def test_solve_writes_a_valid_plan(tmp_path, capsys):
    code, out, err = run(["solve", *SMALL, "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    plan = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert plan["format"] == "moeplace.plan"
    assert len(plan["placements"]) == 32
    assert {p["layer"] for p in plan["placements"]} == {2, 3, 4, 5}
    assert plan["solver"]["bound"] <= plan["solver"]["objective"]
    assert plan["solver"]["bound_method"]  # the plan names what proved its bound
    assert plan["solver"]["objective"] <= plan["baselines"]["layer-major"]["objective"]
    assert "wall_time_s" in json.loads((tmp_path / "p" / "run.json").read_text())
    assert "layer-major" in out and "gap" in out


def test_same_seed_gives_byte_identical_plan(tmp_path, capsys):
    assert run(["solve", *SMALL, "--seed", "7", "--out", str(tmp_path / "a")], capsys)[0] == 0
    assert run(["solve", *SMALL, "--seed", "7", "--out", str(tmp_path / "b")], capsys)[0] == 0
    assert (tmp_path / "a" / "plan.json").read_bytes() == (tmp_path / "b" / "plan.json").read_bytes()


def test_evaluate_regenerates_synthetic_stats(tmp_path, capsys):
    run(["solve", *SMALL, "--out", str(tmp_path / "p")], capsys)
    code, out, err = run(["evaluate", str(tmp_path / "p"), "--json"], capsys)
    assert code == 0, err
    m = json.loads(out)["metrics"]
    plan = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert m["objective"] == pytest.approx(plan["cost"]["objective"])
    assert 0 <= m["pair_cross_node_share"] <= 1 and 1 <= m["nodes_touched"] <= 2
    baselines = json.loads(out)["baselines"]
    assert set(baselines) == set(plan["baselines"]) == {"layer-major", "round-robin", "random"}
    for name, b in plan["baselines"].items():   # the plan's own statistics: the figures solve recorded
        assert baselines[name] == pytest.approx(b)
    code, out, err = run(["evaluate", str(tmp_path / "p")], capsys)
    lines = [" ".join(line.replace("│", " ").split()) for line in out.splitlines()]
    lm = plan["baselines"]["layer-major"]
    rel = (plan["cost"]["objective"] / lm["objective"] - 1) * 100
    assert f"layer-major {lm['objective']:,.0f} {lm['cross_node_bytes_per_token']:,.0f} {rel:+.1f}%" in lines


def test_flame_plan_and_held_out_evaluation(tmp_path, capsys, flame_npz):
    z = np.load(flame_npz)
    np.savez(tmp_path / "train.npz", topk=z["topk"][z["sequence"] < 16])
    np.savez(tmp_path / "held.npz", topk=z["topk"][z["sequence"] >= 16])
    code, out, err = run(["solve", "--model", FLAME, "--nodes", "64", "--stats", str(tmp_path / "train.npz"),
                          "--work-limit", "2000", "--out", str(tmp_path / "flame")], capsys)
    assert code == 0, err
    code, out, err = run(["evaluate", str(tmp_path / "flame" / "plan.json"), "--trace", str(tmp_path / "held.npz")],
                         capsys)
    assert code == 0, err
    for name in ("pair_cross_node_share", "pair_cross_gpu_share", "coact_cross_node_share", "nodes_touched",
                 "chain_cross_node_bytes_per_token"):
        assert name in out
    code, out, _ = run(["evaluate", str(tmp_path / "flame"), "--trace", str(tmp_path / "held.npz"), "--json"],
                       capsys)
    m = json.loads(out)["metrics"]
    assert m["cross_node_bytes_per_token"] < 969_108  # better than layer-major on held-out traffic


def test_presets_lists_models_and_clusters(capsys):
    code, out, _ = run(["presets"], capsys)
    assert code == 0
    for name in ("seed", "deepseek-v3", "mixtral-8x7b", "qwen3-30b-a3b", "h100-sxm", "h200"):
        assert name in out


# -- bad input: one line, exit 2, nothing written ------------------------------------------------------------

def assert_one_line_error(code, err, expected):
    assert code == 2
    assert err == f"error: {expected}\n"


def test_unknown_preset(tmp_path, capsys):
    code, _, err = run(["solve", "--model", "seed-v9", "--out", str(tmp_path / "p")], capsys)
    assert_one_line_error(code, err, "--model: unknown model preset 'seed-v9' (known: seed, deepseek-v3, "
                          "mixtral-8x7b, qwen3-30b-a3b; or give a .json/.toml file)")
    assert not (tmp_path / "p").exists()


def test_missing_stats_file(tmp_path, capsys):
    code, _, err = run(["solve", *SMALL, "--stats", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "p")],
                       capsys)
    assert_one_line_error(code, err, f"{tmp_path / 'nope.npz'}: file not found")
    assert not (tmp_path / "p").exists()


def test_malformed_model_file(tmp_path, capsys):
    bad = tmp_path / "m.json"
    bad.write_text('{"num_layers": 4,,}')
    code, _, err = run(["solve", "--model", str(bad), "--out", str(tmp_path / "p")], capsys)
    assert_one_line_error(code, err, f"{bad}: malformed JSON at line 1 column 18: Expecting property name "
                          "enclosed in double quotes")


def test_model_that_does_not_fit(tmp_path, capsys):
    code, _, err = run(["solve", "--nodes", "200", "--out", str(tmp_path / "p")], capsys)
    assert_one_line_error(code, err, "cluster: 32 experts x 58 MoE layers = 1,856 experts do not fit 200 nodes x 8 "
                          "GPUs x 1 experts per GPU = 1,600 slots: --experts-per-gpu 2 fits them, or --nodes 232")
    assert not (tmp_path / "p").exists()


def test_trace_with_expert_id_out_of_range(tmp_path, capsys):
    topk = np.zeros((3, 4, 2), dtype=np.int32)
    topk[:, :, 1] = 1
    topk[2, 1, 1] = 8
    np.savez(tmp_path / "t.npz", topk=topk)
    code, _, err = run(["solve", *SMALL, "--stats", str(tmp_path / "t.npz"), "--out", str(tmp_path / "p")], capsys)
    assert_one_line_error(code, err, f"{tmp_path / 't.npz'}: topk: expert id 8 at token 2, layer 1, choice 1 "
                          "outside 0..7")
    assert not (tmp_path / "p").exists()


def test_existing_output_needs_force(tmp_path, capsys):
    out = tmp_path / "p"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = run(["solve", *SMALL, "--out", str(out)], capsys)
    assert_one_line_error(code, err, f"{out}: output directory exists and is not empty (use --force to replace it)")
    assert (out / "keep.txt").read_text() == "mine"
    assert run(["solve", *SMALL, "--out", str(out), "--force"], capsys)[0] == 0
    assert (out / "plan.json").exists() and not (out / "keep.txt").exists()


def test_evaluate_refuses_a_non_plan(tmp_path, capsys):
    f = tmp_path / "x.json"
    f.write_text("{}")
    code, _, err = run(["evaluate", str(f)], capsys)
    assert_one_line_error(code, err, f"{f}: format: not a moeplace plan (format None, expected 'moeplace.plan')")


def test_a_stop_on_the_wall_clock_is_said_plainly(tmp_path, capsys, monkeypatch):
    """Simulated clock (each read 1000 s later): the search stops on --time-limit, and both the console and
    plan.json say that the plan depends on the machine's speed and how to get one that does not."""
    from moeplace.solvers import budget
    from tests.solvers.test_budget import FakeClock

    monkeypatch.setattr(budget, "wall_clock", FakeClock(step_s=1000.0))
    code, out, err = run(["solve", "--model", TINY, "--nodes", "4", "--gpus-per-node", "8", "--time-limit", "5",
                          "--no-emit", "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    solver = json.loads((tmp_path / "p" / "plan.json").read_text())["solver"]
    assert solver["stop_reason"] == "time_limit" and solver["reproducible"] is False
    assert solver["stop_note"] == budget.stop_message("time_limit", 5.0)
    assert "stopped: time_limit" in out
    assert "warning: the search stopped on the wall-clock limit (5 s) before its work budget: this plan depends " \
           "on how fast and how busy this machine was" in " ".join(out.split())
    run_json = json.loads((tmp_path / "p" / "run.json").read_text())
    assert run_json["deterministic"] is False and run_json["stop_note"] == solver["stop_note"]


@pytest.mark.parametrize("option,value", [("--time-limit", "inf"), ("--time-limit", "nan"), ("--work-limit", "nan"),
                                          ("--seed", "-1"), ("--strong-bound", "1e308"), ("--move-cost", "nan"),
                                          ("--nodes", "1000000000"), ("--experts-per-gpu", "1000000000")])
def test_solve_refuses_numbers_out_of_range_before_any_work(option, value, tmp_path, capsys):
    code, _, err = run(["solve", *SMALL, option, value, "--out", str(tmp_path / "p")], capsys)
    assert code == 2 and f"Invalid value for '{option}'" in err
    assert not (tmp_path / "p").exists()


def test_emit_refuses_an_infinite_capacity_factor(tmp_path, capsys):
    assert run(["solve", *SMALL, "--out", str(tmp_path / "p")], capsys)[0] == 0
    code, _, err = run(["emit", str(tmp_path / "p"), "--out", str(tmp_path / "l"), "--capacity-factor", "inf"],
                       capsys)
    assert (code, err) == (2, "error: --capacity-factor: Input should be a finite number (got inf)\n")


@pytest.mark.parametrize("edit,words", [
    (lambda d: d["placements"][0].__setitem__("replica", -1), "replica"),
    (lambda d: d["solver"].__setitem__("objective", float("nan")), "NaN"),
    (lambda d: d["cost"].__setitem__("objective", float("inf")), "Infinity"),
    (lambda d: d["flow"]["tier_costs"].__setitem__("leaf", -1e308), "tier cost leaf"),
])
def test_a_crafted_plan_is_one_line(edit, words, tmp_path, capsys):
    assert run(["solve", *SMALL, "--no-emit", "--out", str(tmp_path / "p")], capsys)[0] == 0
    plan = tmp_path / "p" / "plan.json"
    d = json.loads(plan.read_text())
    edit(d)
    plan.write_text(json.dumps(d))
    code, _, err = run(["emit", str(plan), "--out", str(tmp_path / "l")], capsys)
    assert code == 2 and err.count("\n") == 1 and words in err, err


@pytest.mark.parametrize("text,words", [("[" * 100_000 + "]" * 100_000, "nested too deeply"),
                                        ('{"num_gpus": ' + "9" * 5000 + "}", "digits")])
def test_a_pathological_plan_file_is_one_line(text, words, tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(text)
    code, _, err = run(["emit", str(plan), "--out", str(tmp_path / "l")], capsys)
    assert code == 2 and err.count("\n") == 1 and words in err and str(plan) in err, err
