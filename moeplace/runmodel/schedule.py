"""What one rank does for one micro-batch: the flow model as tables, transfers and expert tasks (numpy only).

Every rank holds its token vectors in tables whose rows are tokens in ascending id order. A layer is

    fill      transfer that builds the layer's input table (chain: from the previous primaries' output
              table, or locally from the ingress at the first layer; ep: dispatch from the home table)
    relay     the fill's second hop: a gateway forwards rows it received over the network to the other
              ranks of its node that need them (NVLink)
    tasks     expert work: acc[rows] += gate * expert(input[rows]) for each local expert
    keep      chain only: the primary's output table starts as its input rows (the residual)
    reduce    the combine's first hop: ranks of a remote node add their acc rows into one rank's (NVLink)
    combine   transfer that adds acc rows into the output table (chain: secondaries -> primary;
              ep: experts -> home, which holds the residual)

A token reaches a rank once per transfer even when the rank runs several of its experts (dedup per rank);
a rank sends one pre-summed combine row per token. With ranks grouped into nodes (`node_of_rank`) a token
crosses the network once per remote node (node-level dedup, as the objective prices it): the fill sends it
to one gateway rank of each remote node that needs it, which relays it over NVLink to the others there;
in the combine the node's ranks first sum their rows at one of them, which sends the sum across. The
gateway of (token, node) is the target rank there whose local index follows the sender's most closely
(cyclically), spreading network receives over the node's GPUs the way rail-aligned dispatchers do. Transfers list, per peer, the rows in ascending token
order on both sides, so sender and receiver agree on every slot without exchanging metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moeplace.placement.flows import get_flow

EMPTY = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Transfer:
    send_peers: tuple[int, ...]
    send_rows: tuple[np.ndarray, ...]
    recv_peers: tuple[int, ...]
    recv_rows: tuple[np.ndarray, ...]
    local_src: np.ndarray
    local_dst: np.ndarray

    @property
    def rows_sent(self) -> int:
        return int(sum(r.size for r in self.send_rows))


@dataclass(frozen=True, eq=False)
class ExpertTask:
    slot: int
    rows: np.ndarray
    gate: np.ndarray


@dataclass(frozen=True, eq=False)
class LayerSchedule:
    moe_layer: int
    n_in: int
    fill: Transfer
    tasks: tuple[ExpertTask, ...]
    n_out: int
    keep_src: np.ndarray
    keep_dst: np.ndarray
    combine: Transfer
    relay: Transfer
    reduce: Transfer

    @property
    def transfers(self) -> tuple[Transfer, ...]:
        """In execution order: fill, relay, reduce, combine."""
        return (self.fill, self.relay, self.reduce, self.combine)


@dataclass(frozen=True, eq=False)
class RankSchedule:
    """at_home: hidden states return to each token's home rank after every MoE layer (the flow's
    `hidden_at == "home"`); False: they stay at the token's first expert, which forwards them."""

    flow: str
    at_home: bool
    rank: int
    tokens: np.ndarray
    home_rows: np.ndarray
    layers: tuple[LayerSchedule, ...]
    out_tokens: np.ndarray


def _transfer(tok: np.ndarray, src: np.ndarray, dst: np.ndarray, rank: int, src_table: np.ndarray,
              dst_table: np.ndarray) -> Transfer:
    """Messages (tok[i]: src[i] -> dst[i]) seen by `rank`; tables are sorted token positions."""
    order = np.lexsort((tok, dst, src))
    tok, src, dst = tok[order], src[order], dst[order]
    local = (src == rank) & (dst == rank)
    out = (src == rank) & ~local
    inc = (dst == rank) & ~local
    send_peers, send_rows, recv_peers, recv_rows = [], [], [], []
    for peer in np.unique(dst[out]):
        sel = out & (dst == peer)
        send_peers.append(int(peer))
        send_rows.append(np.searchsorted(src_table, tok[sel]))
    for peer in np.unique(src[inc]):
        sel = inc & (src == peer)
        recv_peers.append(int(peer))
        recv_rows.append(np.searchsorted(dst_table, tok[sel]))
    return Transfer(tuple(send_peers), tuple(send_rows), tuple(recv_peers), tuple(recv_rows),
                    np.searchsorted(src_table, tok[local]), np.searchsorted(dst_table, tok[local]))


def _distinct(rank_TK: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(token position, rank) pairs with each rank once per token."""
    s = np.sort(rank_TK, axis=1)
    keep = np.ones_like(s, dtype=bool)
    keep[:, 1:] = s[:, 1:] != s[:, :-1]
    t, j = np.nonzero(keep)
    return t.astype(np.int64), s[t, j]


def _tasks(rank: int, ml: int, paths_TK: np.ndarray, rank_TK: np.ndarray, gates_TK: np.ndarray,
           in_table: np.ndarray, slots: dict[tuple[int, int], int]) -> tuple[ExpertTask, ...]:
    tasks = []
    for (layer, expert), slot in sorted(slots.items(), key=lambda kv: kv[1]):
        if layer != ml:
            continue
        t, j = np.nonzero((paths_TK == expert) & (rank_TK == rank))
        order = np.argsort(t, kind="stable")
        t, j = t[order], j[order]
        tasks.append(ExpertTask(slot, np.searchsorted(in_table, t), gates_TK[t, j].astype(np.float32)))
    return tuple(tasks)


def _two_hops(tok: np.ndarray, src: np.ndarray, dst: np.ndarray, node_R: np.ndarray, local_R: np.ndarray
              ) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Messages (tok[i]: src[i] -> dst[i], distinct) split into a network-deduplicated pair of hops.

    Returns (direct, relay), each (tok, src, dst): `direct` holds the same-node messages and one message per
    (token, source, remote node) to that node's gateway; `relay` the gateway's NVLink forwards to the other
    destinations there. For the combine call it with source and destination swapped and reverse both hops."""
    remote = node_R[src] != node_R[dst]
    G = int(local_R.max(initial=0)) + 1
    # gateway: per (tok, src, node of dst), the dst whose local index follows src's most closely
    dist = (local_R[dst] - local_R[src]) % G
    order = np.lexsort((dst, dist, node_R[dst], src, tok))
    t, s, d, rem = tok[order], src[order], dst[order], remote[order]
    n = node_R[d]
    first = np.ones(t.size, dtype=bool)
    first[1:] = (t[1:] != t[:-1]) | (s[1:] != s[:-1]) | (n[1:] != n[:-1])
    gate_idx = np.maximum.accumulate(np.where(first, np.arange(t.size), 0))
    direct = ~rem | first
    relay = rem & ~first
    return (t[direct], s[direct], d[direct]), (t[relay], d[gate_idx[relay]], d[relay])


def rank_schedule(flow: str, rank: int, world: int, token_ids_T: np.ndarray, paths_TLK: np.ndarray,
                  rank_TLK: np.ndarray, gates_TLK: np.ndarray, slots: dict[tuple[int, int], int],
                  node_of_rank: np.ndarray | None = None, local_of_rank: np.ndarray | None = None) -> RankSchedule:
    """The schedule of `rank` for one micro-batch of tokens `token_ids_T` (global ids within the step).

    slots: this rank's experts, (moe_layer, expert) -> index into its expert list.
    node_of_rank, local_of_rank: int [world], each rank's node and GPU index there (the manifest's); None:
    every rank its own node (no node-level dedup: transfers go GPU to GPU).
    """
    at_home = get_flow(flow).hidden_at == "home"
    T, L, _ = paths_TLK.shape
    node_R = np.arange(world) if node_of_rank is None else np.asarray(node_of_rank, dtype=np.int64)
    local_R = np.zeros(world, dtype=np.int64) if local_of_rank is None else np.asarray(local_of_rank, dtype=np.int64)
    pos = np.arange(T, dtype=np.int64)
    home = token_ids_T % world
    home_table = pos[home == rank] if at_home else EMPTY
    layers = []
    prev_table, prev_owner = (home_table, home) if at_home else (pos, None)
    for ml in range(L):
        r_TK = rank_TLK[:, ml, :]
        t, q = _distinct(r_TK)
        in_table = np.unique(t[q == rank])
        src = q if prev_owner is None else prev_owner[t]  # chain ingress: every rank has the input
        (ft, fs, fd), (rt, rs, rd) = _two_hops(t, src, q, node_R, local_R)
        fill = _transfer(ft, fs, fd, rank, prev_table, in_table)
        relay = _transfer(rt, rs, rd, rank, in_table, in_table)
        tasks = _tasks(rank, ml, paths_TLK[:, ml, :], r_TK, gates_TLK[:, ml, :], in_table, slots)
        owner = home if at_home else r_TK[:, 0]
        out_table = pos[owner == rank]
        if at_home:
            keep_src = keep_dst = EMPTY
        else:
            keep_src, keep_dst = np.searchsorted(in_table, out_table), np.arange(out_table.size, dtype=np.int64)
        (ct, co, cq), (dt, dg, dq) = _two_hops(t, owner[t], q, node_R, local_R)
        reduce = _transfer(dt, dq, dg, rank, in_table, in_table)  # reversed: contributors -> aggregator
        combine = _transfer(ct, cq, co, rank, in_table, out_table)
        layers.append(LayerSchedule(ml, int(in_table.size), fill, tasks, int(out_table.size), keep_src, keep_dst,
                                    combine, relay, reduce))
        prev_table, prev_owner = out_table, owner
    return RankSchedule(flow, at_home, rank, token_ids_T, home_table, tuple(layers), token_ids_T[prev_table])
