"""The fused expert-parallel layer step: route, dispatch, expert, combine, captured as one CUDA graph.

Every rank holds `tokens` home tokens and one expert of the layer (expert e on rank lut[e]). Per
micro-batch of T_m tokens, with capacity C rows per peer (C = T_m rules out overflow, since a token sends
at most one row to each rank):

    route     one Triton kernel: slots in the [W, C] buffers, gates, the token feeding each slot
    dispatch  nccl: pack [W*C, H], then all_to_all_single on the communication stream
              symm: the pack kernel writes each peer's rows straight into that peer's symmetric receive
              buffer over NVLink (SM stores, lowest latency), then a device barrier
              symm-ce: pack locally, then copy-engine copies into the peers' buffers, one stream per peer
              (no SMs taken from the experts: the better choice with several micro-batches)
    expert    counted (`counted.CountedSwiGLU`): on the rows received, the per-peer counts exchanged with the
              rows (nccl: an all-to-all of W int32; symm: written into the peers' count buffers before the
              barrier) and read on the device; else on all W*C rows (static shape), cuBLAS or the
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

torch = import_torch()
dist = torch.distributed


def ce_copies(pairs, streams, base) -> None:
    """dst.copy_(src) for each (dst, src), one stream per copy forked from and joined back to `base`, so that
    the copies to different peers run on different copy engines at once (also inside a CUDA graph)."""
    ev = torch.cuda.Event()
    ev.record(base)
    done = []
    for (dst, src), s in zip(pairs, streams):
        s.wait_event(ev)
        with torch.cuda.stream(s):
            dst.copy_(src)
            e = torch.cuda.Event()
            e.record(s)
            done.append(e)
    for e in done:
        base.wait_event(e)


def symm_buffer(shape, dtype, device, group):
    """A symmetric-memory tensor and its handle (raises where the build or the machine has none)."""
    import torch.distributed._symmetric_memory as symm_mem

    t = symm_mem.empty(shape, dtype=dtype, device=device)
    if hasattr(symm_mem, "enable_symm_mem_for_group"):
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                symm_mem.enable_symm_mem_for_group(group.group_name)
        except Exception:  # noqa: BLE001 - newer builds need no enabling
            pass
    return t, symm_mem.rendezvous(t, group)


class EpStep:
    def __init__(self, *, rank: int, world: int, expert: Callable, hidden: int, k: int, tokens: int, capacity: int,
                 micro_batches: int, transport: str, device, dtype, lut, group=None, x=None,
                 counted: bool = False) -> None:
        if tokens % micro_batches:
            raise ValueError(f"tokens {tokens} not divisible by micro_batches {micro_batches}")
        self.rank, self.world, self.k, self.H = rank, world, k, hidden
        self.T, self.M, self.C = tokens, micro_batches, capacity
        self.Tm = tokens // micro_batches
        self.expert, self.transport, self.device, self.dtype = expert, transport, device, dtype
        self.group = group or dist.group.WORLD
        self.lut = lut.to(device=device, dtype=torch.int64)
        W, C, H, Tm = world, capacity, hidden, self.Tm
        self.x = x if x is not None else torch.zeros(tokens, H, device=device, dtype=dtype)
        self.topk = torch.zeros(tokens, k, device=device, dtype=torch.int64)
        self.gates = torch.zeros(tokens, k, device=device, dtype=torch.float32)
        self.out = torch.zeros(tokens, H, device=device, dtype=dtype)
        mk = lambda *s, dt=torch.int64: [torch.zeros(*s, device=device, dtype=dt) for _ in range(self.M)]  # noqa: E731
        self.dest, self.pos = mk(Tm * k), mk(Tm * k)
        self.geff = mk(Tm * k, dt=torch.float32)
        self.gidx = mk(W * C)
        self.count = mk(W, dt=torch.int32)
        self.comm = torch.cuda.Stream(device)
        self.copy_streams = [torch.cuda.Stream(device) for _ in range(W)] if transport == "symm-ce" else []
        self.send = mk(W * C, H, dt=dtype)
        self.counted = counted
        if counted:  # rows sent to each peer (at most C), and a per-micro-batch output for the expert
            self.scount = mk(W, dt=torch.int32)
            self.ybuf = mk(W * C, H, dt=dtype)
        self.rows = [torch.arange(p * C, (p + 1) * C, device=device) for p in range(W)]
        if transport in ("symm", "symm-ce"):
            self.recv, self.recv_h, self.back, self.back_h = [], [], [], []
            for _ in range(self.M):
                t, h = symm_buffer((W * C, H), dtype, device, self.group)
                self.recv.append(t)
                self.recv_h.append(h)
                t, h = symm_buffer((W * C, H), dtype, device, self.group)
                self.back.append(t)
                self.back_h.append(h)
            if counted:
                self.rcount, cnt_h = [], []
                for _ in range(self.M):
                    t, h = symm_buffer((W,), torch.int32, device, self.group)
                    self.rcount.append(t)
                    cnt_h.append(h)
                self.peer_cnt = [[h.get_buffer(p, (W,), torch.int32, 0) for p in range(W)] for h in cnt_h]
                for h in cnt_h:
                    h.barrier(channel=0)
            self.peer_recv = [[h.get_buffer(p, (W * C, H), dtype, 0) for p in range(W)] for h in self.recv_h]
            self.peer_back = [[h.get_buffer(p, (W * C, H), dtype, 0) for p in range(W)] for h in self.back_h]
            for h in self.recv_h + self.back_h:
                h.barrier(channel=0)
            torch.cuda.synchronize(device)
        elif transport == "nccl":
            self.recv = mk(W * C, H, dt=dtype)
            self.back = mk(W * C, H, dt=dtype)
            if counted:
                self.rcount = mk(W, dt=torch.int32)
        else:
            raise ValueError(f"unknown transport {transport!r} (nccl, symm or symm-ce)")
        self.graph = None

    def load(self, x, topk, gates) -> None:
        self.x.copy_(x)
        self.topk.copy_(topk)
        self.gates.copy_(gates)

    def _rows(self, m: int):
        return slice(m * self.Tm, (m + 1) * self.Tm)

    def _body(self) -> None:
        W, C, k, r = self.world, self.C, self.k, self.rank
        cs = torch.cuda.current_stream(self.device)
        self.comm.wait_stream(cs)
        done_dispatch, done_expert, done_combine, ys = [], [], [], []
        for m in range(self.M):
            rows = self._rows(m)
            torch.index_select(self.lut, 0, self.topk[rows].reshape(-1), out=self.dest[m])
            epkernels.route(self.dest[m], self.gates[rows].reshape(-1), C, W, k, self.pos[m], self.geff[m],
                            self.gidx[m], self.count[m])
            if self.counted:
                torch.clamp(self.count[m], max=C, out=self.scount[m])
            if self.transport == "symm":
                for p in range(W):
                    torch.index_select(self.x[rows], 0, self.gidx[m][p * C:(p + 1) * C],
                                       out=self.peer_recv[m][p][r * C:(r + 1) * C])
                    if self.counted:
                        self.peer_cnt[m][p][r:r + 1].copy_(self.scount[m][p:p + 1])
            else:
                torch.index_select(self.x[rows], 0, self.gidx[m], out=self.send[m])
            ev = torch.cuda.Event()
            ev.record(cs)
            with torch.cuda.stream(self.comm):
                self.comm.wait_event(ev)
                if self.transport == "symm-ce":
                    ce_copies([(self.peer_recv[m][p][r * C:(r + 1) * C], self.send[m][p * C:(p + 1) * C])
                               for p in range(W)], self.copy_streams, self.comm)
                    if self.counted:
                        for p in range(W):
                            self.peer_cnt[m][p][r:r + 1].copy_(self.scount[m][p:p + 1])
                if self.transport != "nccl":
                    self.recv_h[m].barrier(channel=0)
                else:
                    if self.counted:
                        dist.all_to_all_single(self.rcount[m], self.scount[m], group=self.group)
                    dist.all_to_all_single(self.recv[m], self.send[m], group=self.group)
                ev = torch.cuda.Event()
                ev.record(self.comm)
                done_dispatch.append(ev)
        for m in range(self.M):
            cs.wait_event(done_dispatch[m])
            y = self.expert(self.recv[m], self.rcount[m], out=self.ybuf[m]) if self.counted else self.expert(self.recv[m])
            ys.append(y)
            if self.transport == "symm":
                for p in range(W):
                    torch.index_select(y, 0, self.rows[p], out=self.peer_back[m][p][r * C:(r + 1) * C])
            ev = torch.cuda.Event()
            ev.record(cs)
            with torch.cuda.stream(self.comm):
                self.comm.wait_event(ev)
                if self.transport == "symm-ce":
                    ce_copies([(self.peer_back[m][p][r * C:(r + 1) * C], y[p * C:(p + 1) * C]) for p in range(W)],
                              self.copy_streams, self.comm)
                if self.transport != "nccl":
                    self.back_h[m].barrier(channel=0)
                else:
                    dist.all_to_all_single(self.back[m], y, group=self.group)
                ev = torch.cuda.Event()
                ev.record(self.comm)
                done_combine.append(ev)
            done_expert.append(ev)
        for m in range(self.M):
            rows = self._rows(m)
            cs.wait_event(done_combine[m])
            epkernels.combine(self.x[rows], self.back[m], self.pos[m], self.geff[m], k, self.out[rows])
        cs.wait_stream(self.comm)
        self._keep = ys

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
