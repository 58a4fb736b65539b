"""The rank layout: a sound plan transposed per rank; every inconsistency named; hosts renamed by hostlist."""

from __future__ import annotations

import pytest

from moeplace.errors import InputError
from moeplace.launch.layout import plan_layout, plan_problems, with_hosts
from tests.launch.plans import chain_plan, ep_plan


def edited(plan, index: int, **update):
    placements = list(plan.placements)
    placements[index] = placements[index].model_copy(update=update)
    return plan.model_copy(update={"placements": placements})


def test_layout_rows_follow_the_plan():
    layout = plan_layout(ep_plan())
    assert layout.hosts == ("gpu07", "gpu08") and layout.world_size == 4 and layout.is_node_major
    row = layout.rows[2]
    assert (row.rank, row.host, row.node, row.local_gpu) == (2, "gpu08", 1, 0)
    assert [(s.layer, s.expert) for s in row.slots] == [(2, 3), (3, 0)]
    assert plan_layout(chain_plan()).rows[8].slots == ()


@pytest.mark.parametrize("index,update,problem", [
    (7, {"local_gpu": 0}, "ranks 6 and 7 both use GPU 0 of node003"),
    (7, {"local_gpu": 5}, "rank 7 uses local GPU 5, a node has GPUs 0..2"),
    (4, {"host": "node009"}, "node 1 is node002 for one rank and node009 for rank 4"),
    (5, {"expert": 1, "moe_layer": 0, "layer": 2},
     "expert 1 of layer 2 replica 0 is on ranks 4 and 5"),
    (0, {"layer": 2}, "rank 0: MoE layer 1 is model layer 3, not 2"),
    (3, {"host": "bad host"}, "rank 3: host name 'bad host' is not a valid host name (ASCII letters, digits, '.', '_', '-')"),
])
def test_plan_problems_name_the_inconsistency(index, update, problem):
    assert problem in plan_problems(edited(chain_plan(), index, **update))


def test_an_unplaced_expert_is_a_problem_and_emit_refuses_it():
    plan = edited(chain_plan(), 5, expert=None, moe_layer=None, layer=None, replica=None)
    assert plan_problems(plan) == ["expert 3 of layer 3 is on no GPU (1 experts unplaced)"]
    with pytest.raises(InputError, match=r"^plan.json: placements: expert 3 of layer 3 is on no GPU"):
        plan_layout(plan)


def test_with_hosts_renames_nodes_in_order():
    plan = with_hosts(chain_plan(), "gpu[098-100]")
    layout = plan_layout(plan)
    assert layout.hosts == ("gpu098", "gpu099", "gpu100")
    assert layout.rows[4].host == "gpu099" and plan.cluster.hosts == "gpu[098-100]"


@pytest.mark.parametrize("hosts,message", [
    ("gpu[1-2]", "--hosts: 'gpu[1-2]' names 2 hosts, the plan has 3 nodes"),
    ("a,b,a", "--hosts: 'a,b,a' names host a twice"),
])
def test_with_hosts_errors(hosts, message):
    with pytest.raises(InputError) as exc:
        with_hosts(chain_plan(), hosts)
    assert str(exc.value) == message
