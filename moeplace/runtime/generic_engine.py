"""The generic engine, any flow's per-rank executor: schedules step by step, on CPU (gloo) or GPU (NCCL, graphs).

Issue order is the same on every rank (layer, then phase, then micro-batch): fills of all micro-batches,
then each micro-batch's relay (node dedup's NVLink second hop), experts, reduce (the combine's NVLink first
hop) and combine, then the combines' sums. On GPU the transfers run on a
communication stream, so micro-batch 1's fill overlaps micro-batch 0's experts and micro-batch 0's combine
overlaps micro-batch 1's experts; the host never waits inside a step.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from moeplace.runmodel.schedule import RankSchedule, Transfer
from moeplace.runtime.comm import Comm
from moeplace.runtime.deps import import_torch
from moeplace.runtime.expert_runner import ExpertRunner
from moeplace.runtime.timing import StepClock

if TYPE_CHECKING:
    from moeplace.runtime.rank_run import Rank, Work

torch = import_torch()


class Engine:
    def __init__(self, comm: Comm, runners: list[ExpertRunner], dtype, device, capacity_rows: int) -> None:
        self.comm = comm
        self.runners = runners
        self.dtype = dtype
        self.device = device
        self.cuda = device.type == "cuda"
        self.capacity_rows = capacity_rows
        self.comm_stream = torch.cuda.Stream(device) if self.cuda else None
        self.overflow_rows = 0
        self._idx: dict[int, Any] = {}

    def ix(self, arr: np.ndarray):
        """Device index tensor for a schedule array, uploaded once and cached by identity."""
        t = self._idx.get(id(arr))
        if t is None:
            t = torch.as_tensor(arr, dtype=torch.int64).to(self.device)
            self._idx[id(arr)] = (t, arr)
            return t
        return t[0]

    def gate(self, arr: np.ndarray):
        t = self._idx.get(id(arr))
        if t is None:
            t = (torch.as_tensor(arr, dtype=torch.float32).to(self.device)[:, None], arr)
            self._idx[id(arr)] = t
        return t[0]

    def prepare(self, schedules: list[RankSchedule]) -> None:
        """Upload every index array and capture every expert bucket before the first step."""
        for s in schedules:
            for lay in s.layers:
                for tr in lay.transfers:
                    for a in (*tr.send_rows, *tr.recv_rows, tr.local_src, tr.local_dst, _cat(tr.send_rows),
                              _cat(tr.recv_rows)):
                        self.ix(a)
                for task in lay.tasks:
                    self.ix(task.rows)
                    self.gate(task.gate)
                    self.runners[task.slot].warm(task.rows.size)
                self.ix(lay.keep_src)

    def _post(self, tr: Transfer, src_table):
        for rows in tr.send_rows:
            self.overflow_rows += max(0, rows.size - self.capacity_rows)
        send = src_table.index_select(0, self.ix(_cat(tr.send_rows))).to(self.dtype)
        recv = torch.empty(int(sum(r.size for r in tr.recv_rows)), src_table.shape[1], dtype=self.dtype,
                           device=self.device)
        if self.cuda:
            ev = torch.cuda.Event()
            ev.record()
            self.comm_stream.wait_event(ev)
        with torch.cuda.stream(self.comm_stream) if self.cuda else nullcontext():
            works = self.comm.start(tr, send, recv)
        return send, recv, works

    def _experts(self, lay, x):
        acc = torch.zeros(lay.n_in, x.shape[1], dtype=torch.float32, device=self.device)
        for task in lay.tasks:
            if task.rows.size == 0:
                continue
            rows = self.ix(task.rows)
            y = self.runners[task.slot](x.index_select(0, rows))
            acc.index_add_(0, rows, y.float() * self.gate(task.gate))
        return acc

    def step(self, schedules: list[RankSchedule], ingress: list, *, clock: StepClock | None = None,
             layer_sync: bool = False) -> list:
        """One step over all micro-batches; returns each micro-batch's final table (rows: out_tokens)."""
        tables = [x.index_select(0, self.ix(s.home_rows)) if s.at_home else x for s, x in
                  zip(schedules, ingress)]
        in_flight: list = []  # every transfer's buffers live until the step ends (NCCL may still read them)
        for li in range(len(schedules[0].layers)):
            if layer_sync:
                self.comm.barrier(hold_us=200.0)
                if clock is not None:
                    clock.mark()
            lays = [s.layers[li] for s in schedules]
            fills = [self._post(lay.fill, tables[m]) for m, lay in enumerate(lays)]
            combines, inputs = [], []
            for m, lay in enumerate(lays):
                _, recv, works = fills[m]
                x = torch.empty(lay.n_in, tables[m].shape[1], dtype=self.dtype, device=self.device)
                x.index_copy_(0, self.ix(lay.fill.local_dst), tables[m].index_select(0, self.ix(lay.fill.local_src)))
                self.comm.finish(works)
                x.index_copy_(0, self.ix(_cat(lay.fill.recv_rows)), recv)
                relay = self._post(lay.relay, x)  # node dedup: the gateway forwards over NVLink
                self.comm.finish(relay[2])
                x.index_copy_(0, self.ix(_cat(lay.relay.recv_rows)), relay[1])
                acc = self._experts(lay, x)
                reduce = self._post(lay.reduce, acc)  # node dedup: sum the node's rows at its aggregator
                self.comm.finish(reduce[2])
                acc.index_add_(0, self.ix(_cat(lay.reduce.recv_rows)), reduce[1].float())
                combines.append(self._post(lay.combine, acc))
                in_flight.append((relay, reduce))
                inputs.append((x, acc))
            for m, lay in enumerate(lays):
                x, acc = inputs[m]
                if schedules[m].at_home:
                    out = tables[m].float()
                else:
                    out = x.index_select(0, self.ix(lay.keep_src)).float()
                out.index_add_(0, self.ix(lay.combine.local_dst), acc.index_select(0, self.ix(lay.combine.local_src)))
                _, recv, works = combines[m]
                self.comm.finish(works)
                out.index_add_(0, self.ix(_cat(lay.combine.recv_rows)), recv.float())
                tables[m] = out.to(self.dtype)
            in_flight.append((fills, combines))
            if layer_sync and clock is not None:
                clock.mark()
        return tables


_CAT: dict[int, tuple[np.ndarray, tuple]] = {}



class GenericStep:
    """The generic engine on the schedules: any flow, any placement; counts what `Comm.start` sends."""

    engine, transport = "generic", "p2p"

    def __init__(self, run: Rank, runners: list[ExpertRunner], work: Work) -> None:
        cap = max(1, -(-run.manifest.buffers.capacity_tokens_per_peer // run.micro_batches))
        self.executor = Engine(run.comm, runners, run.dtype, run.device, cap)
        run.at("capturing CUDA graphs" if run.cuda and run.cfg.graphs else "preparing")
        self.executor.prepare([s for v in work.schedules for s in v])
        self.work = work
        self.capacity_rows_per_peer = self.expert_rows = None

    def __call__(self, v: int, clock: StepClock | None = None, layer_sync: bool = False):
        schedules = self.work.schedules[v % len(self.work.schedules)]
        return self.executor.step(schedules, self.work.ingress, clock=clock, layer_sync=layer_sync)

    def start_counting(self) -> None:
        self.executor.overflow_rows = 0

    def overflow_of_step(self) -> float:
        """Rows beyond capacity in the layer-by-layer step just run (the generic engine counts its own)."""
        return 0.0

    def overflow(self, counted: float, steps: int) -> float:
        """Over the timed steps: rows the transfers sent beyond capacity, per step."""
        return self.executor.overflow_rows / max(1, steps * 2)

    def bytes_to_node(self, run: Rank, sent_bytes: dict[int, float]) -> dict[int, float]:
        """Counted by `Comm.start` over the 2 x steps timed steps, per step."""
        node_of = {r.rank: r.node for r in run.manifest.ranks}
        out: dict[int, float] = {}
        for peer, nbytes in sent_bytes.items():
            out[node_of[peer]] = out.get(node_of[peer], 0.0) + nbytes / max(1, 2 * run.cfg.steps)
        return out

    def outputs(self, tables) -> list:
        return [(s.out_tokens, t.float().cpu().numpy()) for s, t in zip(self.work.schedules[0], tables)]

def _cat(parts: tuple[np.ndarray, ...]) -> np.ndarray:
    """Concatenation of a transfer's per-peer rows, cached so that its device copy is cached too."""
    hit = _CAT.get(id(parts))
    if hit is None or hit[1] is not parts:
        arr = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        _CAT[id(parts)] = hit = (arr, parts)
    return hit[0]
