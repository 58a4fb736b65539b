"""The peer registry: every placement method moeplace is measured against, behind one signature.

A peer is a function `(problem, seed) -> item_gpu_I` (int [items], the GPU of every item) that returns a
feasible placement of `problem` (capacities per GPU and node, balance per layer when the problem asks for
it). Peers never see held-out traffic and never call moeplace's solvers; the benchmark scores every peer
and every solver with the one objective (`moeplace.placement.cost.evaluate`).

Peers that wrap an optional library (pymetis, kahip, mtkahypar: `pip install 'moeplace[peers]'`) name it in
`requires`; `missing(name)` says which are absent so a caller can skip the peer with that message, and the
peer itself raises `PeerUnavailable` with the same message when called without it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from moeplace.placement.problem import Problem

PeerFn = Callable[[Problem, int], np.ndarray]


class PeerUnavailable(RuntimeError):
    """The peer's library is not installed (the message names it and the install command)."""


@dataclass(frozen=True)
class PeerInfo:
    name: str
    summary: str
    requires: tuple[str, ...] = ()


PEERS: dict[str, PeerFn] = {}
PEER_INFO: dict[str, PeerInfo] = {}


def register_peer(name: str, summary: str, requires: tuple[str, ...] = ()) -> Callable[[PeerFn], PeerFn]:
    def deco(fn: PeerFn) -> PeerFn:
        if name in PEERS:
            raise ValueError(f"peer {name!r} is already registered")
        PEERS[name] = fn
        PEER_INFO[name] = PeerInfo(name=name, summary=summary, requires=tuple(requires))
        return fn

    return deco


def missing(name: str) -> str | None:
    """Why peer `name` cannot run here (its missing libraries), or None when it can."""
    absent = [mod for mod in PEER_INFO[name].requires if importlib.util.find_spec(mod) is None]
    if not absent:
        return None
    return (f"peer {name!r} needs the Python package(s) {', '.join(absent)}, not installed "
            f"(pip install 'moeplace[peers]')")


def require(name: str) -> None:
    """Raise `PeerUnavailable` when peer `name` lacks a library."""
    why = missing(name)
    if why:
        raise PeerUnavailable(why)
