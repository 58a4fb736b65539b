"""Peers and baselines: the placement methods moeplace is measured against, run by the same code.

`PEERS` maps a name to `(problem, seed) -> item_gpu_I`; see `moeplace.peers.registry` and docs/peers.md.
"""

from moeplace.peers.registry import PEER_INFO, PEERS, PeerUnavailable, missing, register_peer
from moeplace.peers import simple, classic, eplb, metis, kahip, mtkahypar  # noqa: E402,F401  (register)

__all__ = ["PEERS", "PEER_INFO", "PeerUnavailable", "missing", "register_peer"]
