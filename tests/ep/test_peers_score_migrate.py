"""EP peers give valid engine layouts; the score counts what it says; migrations move what differs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moeplace.ep.migrate import migration, migration_json
from moeplace.ep.peers import EP_PEERS, EpShape
from moeplace.ep.rebalance import coact_from_topk
from moeplace.ep.score import score
from moeplace.traces.synth import synthesize_paths


@pytest.mark.parametrize("name", sorted(EP_PEERS))
def test_every_peer_gives_every_expert_a_slot(name):
    if name == "mtkahypar":
        pytest.importorskip("mtkahypar")
    plan = synthesize_paths(2, 32, 4, num_tokens=512, seed=0)
    w = np.stack([np.bincount(plan[:, li].ravel(), minlength=32) for li in range(2)]).astype(float)
    s = EpShape(32, 48, 4, 2, 8)
    phy = EP_PEERS[name](w, coact_from_topk(plan, 32), plan, s, 0)
    assert phy.shape == (2, 48)
    for li in range(2):
        assert sorted(set(phy[li].tolist())) == list(range(32))


def test_score_of_a_hand_made_layout():
    phy = np.array([[0, 1, 2, 3]])        # 4 GPUs on 2 nodes, one slot each: node 0 = experts 0, 1
    paths = np.array([[[0, 1]], [[0, 2]]])
    m = score(phy, paths, 4, 2, home_T=np.array([0, 0]))
    assert m["ranks_touched"] == 2.0
    assert m["nodes_touched"] == 1.5 and m["remote_nodes"] == 0.5
    assert m["cross_node_bytes_per_token"] == 2 * 14336 * 0.5


def test_migration_moves_only_what_differs_and_prefers_nvlink():
    old = np.array([[0, 1, 2, 3, 0, 1, 2, 3]])    # 4 GPUs x 2 slots, 2 GPUs per node
    new = np.array([[0, 1, 2, 3, 0, 1, 3, 2]])    # rank 3 swaps slot order only: no move
    assert migration(old, new, 4, 2, 100)[1] == []
    new = np.array([[0, 1, 2, 3, 0, 0, 2, 3]])    # rank 2 takes a second copy of 0 instead of 1
    after, moves = migration(old, new, 4, 2, 100)
    assert np.array_equal(after, new)
    assert moves == [{"moe_layer": 0, "expert": 0, "from_rank": 2, "to_rank": 2, "bytes": 100, "nvlink": True}] \
        or moves[0]["to_rank"] == 2
    doc = json.loads(migration_json(moves, num_gpus=4, num_slots=8))
    assert doc["num_moves"] == 1 and doc["bytes_moved"] == 100
