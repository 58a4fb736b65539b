"""Replicas of hot experts: choice by load, numbering, expected traffic, plans and evaluation."""

import numpy as np
import pytest

from moeplace.errors import InputError
from moeplace.placement.builder import build_problem
from moeplace.placement.cost import evaluate
from moeplace.placement.replication import choose_copies, expand_traffic, item_table
from moeplace.topologies.base import TierCosts
from moeplace.traces.stats import RoutingStats
from tests.conftest import paths

COSTS = TierCosts((0.0, 0.1, 1.0, 2.0, 3.0))


def test_copies_go_to_the_highest_load_per_copy():
    load = np.array([[100, 10, 40], [30, 30, 5]])
    assert choose_copies(load, 0).tolist() == [[1, 1, 1], [1, 1, 1]]
    # water-filling: each copy goes to the expert with the highest load per copy
    assert choose_copies(load, 1).tolist() == [[2, 1, 1], [1, 1, 1]]
    assert choose_copies(load, 3).tolist() == [[3, 1, 2], [1, 1, 1]]
    copies = choose_copies(load, 6)
    assert copies.sum() == 12
    assert (load / copies).max() == pytest.approx(25.0)


def test_item_table_numbers_copies_after_the_experts():
    base, rep = item_table(np.array([[1, 3], [2, 1]]))
    assert base.tolist() == [0, 1, 2, 3, 1, 1, 2]
    assert rep.tolist() == [0, 0, 0, 0, 1, 2, 1]


def test_expanded_traffic_keeps_the_bytes(tiny_model):
    stats = RoutingStats.from_paths(paths([[0, 1], [2, 3]], [[1, 0], [3, 2]]), 4)
    from moeplace.placement.flows import build_traffic

    tr = build_traffic("chain", stats, tiny_model)
    base, _ = item_table(np.array([[2, 1, 1, 1], [1, 1, 3, 1]]))
    ex = expand_traffic(tr, base)
    assert ex.num_items == 11
    assert ex.total_bytes == pytest.approx(tr.total_bytes)


def test_objective_is_the_average_over_copies(tiny_model):
    """Expert 0 of layer 0 has two copies: the cost is the mean of the costs with either copy alone."""
    from moeplace.placement.presets import load_cluster

    cluster = load_cluster(None, num_nodes=3, gpus_per_node=4, topology={"nodes_per_leaf": 3, "leaves_per_pod": 1})
    stats = RoutingStats.from_paths(paths([[0, 1], [2, 3]]), 4)
    one = build_problem(tiny_model, cluster, stats, tier_costs=COSTS)
    two = build_problem(tiny_model, cluster, stats, tier_costs=COSTS, copies_LE=np.array([[2, 1, 1, 1], [1] * 4]))
    assert two.num_items == 9 and two.num_replicas == 1
    a = np.arange(8)                       # layer 0 on node 0, layer 1 on node 1
    copy_on = 8                            # the copy of expert 0 sits on node 2
    with_copy = np.concatenate([a, [copy_on]])
    moved = a.copy()
    moved[0] = copy_on                     # as if expert 0 lived only on node 2
    expected = 0.5 * evaluate(one, a).objective + 0.5 * evaluate(one, moved).objective
    assert evaluate(two, with_copy).objective == pytest.approx(expected)


def test_too_many_replicas_is_refused(tiny_model):
    from moeplace.placement.presets import load_cluster

    cluster = load_cluster(None, num_nodes=3, gpus_per_node=4)
    stats = RoutingStats.from_paths(paths([[0, 1], [2, 3]]), 4)
    with pytest.raises(InputError, match="6 replicas need 6 spare GPUs; 3 nodes x 4 GPUs = 12 GPUs hold 8 experts "
                                         "and leave 4 spare"):
        build_problem(tiny_model, cluster, stats, replicas=6)


def test_replicas_need_one_expert_per_gpu(tiny_model):
    from moeplace.placement.presets import load_cluster

    cluster = load_cluster(None, num_nodes=2, gpus_per_node=2, experts_per_gpu=3)
    stats = RoutingStats.from_paths(paths([[0, 1], [2, 3]]), 4)
    with pytest.raises(InputError, match="replicas need one expert per GPU"):
        build_problem(tiny_model, cluster, stats, replicas=2)


def test_plan_with_replicas_round_trips(tmp_path, capsys):
    import json

    from moeplace.cli import main
    from moeplace.placement.plan import load_plan
    from tests.conftest import REPO

    out = tmp_path / "p"
    argv = ["solve", "--model", str(REPO / "examples" / "tiny.toml"), "--nodes", "5", "--replicas", "8",
            "--synth", "skew=0.8", "--work-limit", "2000", "--no-emit", "-q", "--out", str(out)]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0, capsys.readouterr().err
    plan = load_plan(out / "plan.json")
    assert plan.copies_LE().sum() == 32 + 8
    assert len(set(plan.item_gpu().tolist())) == 40
    with pytest.raises(SystemExit):
        main(["evaluate", str(out), "--json"])
    m = json.loads(capsys.readouterr().out)["metrics"]
    assert m["replicas"] == 8
    assert m["objective"] == pytest.approx(plan.cost.objective)
    assert m["load_imbalance"] == pytest.approx(plan.cost.load_imbalance)
    assert plan.cost.load_imbalance < 1.78  # the same plan without copies is 1.78x (skew 0.8)
