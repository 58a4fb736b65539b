"""The fused expert-parallel layer step: route, dispatch, expert, combine, captured as one CUDA graph.

Every rank holds `tokens` home tokens and one expert of the layer (expert e on rank lut[e]). Per
micro-batch of T_m tokens, with capacity C rows per peer (C = T_m rules out overflow, since a token sends
at most one row to each rank):

    route     one Triton kernel: slots in the [W, C] buffers, gates, the token feeding each slot
    dispatch  the transport (`transports.py`: nccl, symm or symm-ce) packs the rows and moves them into the
              peers' receive buffers
    expert    counted (`counted.CountedSwiGLU`): on the rows received, the per-peer counts exchanged with the
              rows by the transport and read on the device; else on all W*C rows (static shape), cuBLAS or the
              small-batch Triton kernel (expertops.tune_expert)
    combine   the same way back (nccl, SM stores or copy engine), then one kernel:
              out = x + sum_j gate_j * y[slot_j]

Transfers run on a communication stream. With two micro-batches, micro-batch 1's dispatch overlaps
micro-batch 0's expert and micro-batch 0's combine overlaps micro-batch 1's expert. Every rank replays
the same graph in the same order, which is what NCCL needs of collectives inside graphs.
"""

from __future__ import annotations

from collections.abc import Callable

from moeplace.runtime import epkernels
from moeplace.runtime.deps import import_torch
from moeplace.runtime.transports import Transport, make_transport

torch = import_torch()
dist = torch.distributed


class EpStep:
    def __init__(self, *, rank: int, world: int, expert: Callable, hidden: int, k: int, tokens: int, capacity: int,
                 micro_batches: int, transport: str | Transport, device, dtype, lut, group=None, x=None,
                 counted: bool = False) -> None:
        if tokens % micro_batches:
            raise ValueError(f"tokens {tokens} not divisible by micro_batches {micro_batches}")
        self.rank, self.world, self.k, self.H = rank, world, k, hidden
        self.T, self.M, self.C = tokens, micro_batches, capacity
        self.Tm = tokens // micro_batches
        self.transport = make_transport(transport) if isinstance(transport, str) else transport
        self.expert, self.device, self.dtype = expert, device, dtype
        self.group = group or dist.group.WORLD
        self.lut = lut.to(device=device, dtype=torch.int64)
        W, C, H, Tm = world, capacity, hidden, self.Tm
        self.x = x if x is not None else torch.zeros(tokens, H, device=device, dtype=dtype)
        self.topk = torch.zeros(tokens, k, device=device, dtype=torch.int64)
        self.gates = torch.zeros(tokens, k, device=device, dtype=torch.float32)
        self.out = torch.zeros(tokens, H, device=device, dtype=dtype)
        self.dest, self.pos = self.per_micro_batch(Tm * k), self.per_micro_batch(Tm * k)
        self.geff = self.per_micro_batch(Tm * k, dtype=torch.float32)
        self.gidx = self.per_micro_batch(W * C)
        self.count = self.per_micro_batch(W, dtype=torch.int32)
        self.comm = torch.cuda.Stream(device)
        self.send = self.per_micro_batch(W * C, H, dtype=dtype)
        self.counted = counted
        if counted:  # rows sent to each peer (at most C), and a per-micro-batch output for the expert
            self.scount = self.per_micro_batch(W, dtype=torch.int32)
            self.ybuf = self.per_micro_batch(W * C, H, dtype=dtype)
        self.rows = [torch.arange(p * C, (p + 1) * C, device=device) for p in range(W)]
        self.transport.allocate(self)
        self.recv, self.back = self.transport.recv, self.transport.back
        self.rcount = self.transport.rcount if counted else None
        self.graph = None

    def per_micro_batch(self, *shape: int, dtype=torch.int64) -> list:
        """One zero tensor of `shape` per micro-batch."""
        return [torch.zeros(*shape, device=self.device, dtype=dtype) for _ in range(self.M)]

    def load(self, x, topk, gates) -> None:
        self.x.copy_(x)
        self.topk.copy_(topk)
        self.gates.copy_(gates)

    def _rows(self, m: int):
        return slice(m * self.Tm, (m + 1) * self.Tm)

    def _body(self) -> None:
        W, C, k, tr = self.world, self.C, self.k, self.transport
        cs = torch.cuda.current_stream(self.device)
        self.comm.wait_stream(cs)
        done_dispatch, done_combine, ys = [], [], []
        for m in range(self.M):
            rows = self._rows(m)
            torch.index_select(self.lut, 0, self.topk[rows].reshape(-1), out=self.dest[m])
            epkernels.route(self.dest[m], self.gates[rows].reshape(-1), C, W, k, self.pos[m], self.geff[m],
                            self.gidx[m], self.count[m])
            if self.counted:
                torch.clamp(self.count[m], max=C, out=self.scount[m])
            tr.pack(self, m, self.x[rows])
            done_dispatch.append(self._on_comm_stream(cs, lambda m=m: tr.dispatch(self, m)))
        for m in range(self.M):
            cs.wait_event(done_dispatch[m])
            y = self.expert(self.recv[m], self.rcount[m], out=self.ybuf[m]) if self.counted else self.expert(self.recv[m])
            ys.append(y)
            tr.put_back(self, m, y)
            done_combine.append(self._on_comm_stream(cs, lambda m=m, y=y: tr.combine(self, m, y)))
        for m in range(self.M):
            rows = self._rows(m)
            cs.wait_event(done_combine[m])
            epkernels.combine(self.x[rows], self.back[m], self.pos[m], self.geff[m], k, self.out[rows])
        cs.wait_stream(self.comm)
        self._keep = ys

    def _on_comm_stream(self, cs, move: Callable[[], None]):
        """Run `move` on the communication stream after what `cs` has issued; the event that marks its end."""
        ev = torch.cuda.Event()
        ev.record(cs)
        with torch.cuda.stream(self.comm):
            self.comm.wait_event(ev)
            move()
            ev = torch.cuda.Event()
            ev.record(self.comm)
        return ev

    def capture(self) -> None:
        """Warm up eagerly (twice), then capture the whole step; every rank must call this together."""
        for _ in range(2):
            self._body()
        torch.cuda.synchronize(self.device)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            self._body()
        torch.cuda.synchronize(self.device)
        self.graph = g

    def run(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self._body()

    def max_count(self) -> int:
        """Largest per-peer row count of the last step (host sync): above C means entries were dropped."""
        return int(max(int(c.max()) for c in self.count))
