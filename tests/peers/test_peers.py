"""Every registered peer: a feasible plan on small problems (chain and ep, 1 and 2 experts per GPU, balance per
layer), the same plan for the same seed, and a clear skip when its library is missing."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.peers import PEERS, PeerUnavailable, missing
from moeplace.peers.registry import PEER_INFO, PeerInfo, register_peer, require
from moeplace.placement.validate import violations
from tests.peers.problems import small_problem

NAMES = sorted(PEERS)


def _run(name, problem, seed=0):
    why = missing(name)
    if why:
        pytest.skip(why)
    return PEERS[name](problem, seed)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("flow", ["chain", "ep"])
@pytest.mark.parametrize("epg", [1, 2])
def test_feasible_and_deterministic(name, flow, epg):
    p = small_problem(flow, epg)
    a = _run(name, p, seed=3)
    assert a.shape == (p.num_items,) and np.issubdtype(a.dtype, np.integer)
    assert violations(p, a) == []
    assert np.array_equal(_run(name, p, seed=3), a)


@pytest.mark.parametrize("name", NAMES)
def test_balance_per_layer_is_kept(name):
    p = small_problem("ep", 2, balance=True)
    a = _run(name, p)
    assert violations(p, a) == []
    per = np.zeros((p.num_gpus, 3), dtype=int)
    np.add.at(per, (a, p.item_layer_I), 1)
    assert per.max() <= 1


@pytest.mark.parametrize("name", NAMES)
def test_spare_slots(name):
    """Fewer items than slots (8 nodes of 4 GPUs for 24 items): still feasible."""
    p = small_problem("chain", 1, nodes=8)
    assert violations(p, _run(name, p)) == []


def test_random_depends_on_seed():
    p = small_problem()
    assert not np.array_equal(PEERS["random"](p, 0), PEERS["random"](p, 1))


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_peer("layer-major", "again")(lambda problem, seed: None)


def test_missing_library_is_named(monkeypatch):
    monkeypatch.setitem(PEER_INFO, "fake", PeerInfo("fake", "needs a library", ("no_such_module_moeplace",)))
    assert missing("fake") == ("peer 'fake' needs the Python package(s) no_such_module_moeplace, not installed "
                               "(pip install 'moeplace[peers]')")
    with pytest.raises(PeerUnavailable, match="no_such_module_moeplace"):
        require("fake")
    assert missing("layer-major") is None
