"""The plain expert-parallel layer step, written the usual way with torch.distributed (the brief's baseline).

Three variants, one SwiGLU expert per GPU, dispatch all-to-all -> expert (cuBLAS) -> combine all-to-all:

    variable   sort entries by destination, exchange the split sizes (a host synchronisation), then
               all_to_all_single with those splits both ways; combine with index_add
    fixed      GShard-style slots from one-hot + cumsum on the device, fixed [W, C] buffers, gather combine
    graph      `fixed` captured as one CUDA graph and replayed

It is kept as the yardstick the fused step (`epstep.EpStep`) is measured against, side by side in one run.
"""

from __future__ import annotations

from collections.abc import Callable

from moeplace.runtime.deps import import_torch

torch = import_torch()
dist = torch.distributed
F = torch.nn.functional


def plain_variable(x, topk, gates, expert: Callable, lut, world: int):
    T, k = topk.shape
    dest = lut[topk].reshape(-1)
    order = torch.argsort(dest, stable=True)
    tok = order // k
    send = x.index_select(0, tok)
    send_counts = torch.bincount(dest, minlength=world)
    recv_counts = torch.empty_like(send_counts)
    dist.all_to_all_single(recv_counts, send_counts)
    s, r = send_counts.tolist(), recv_counts.tolist()
    recv = x.new_empty(sum(r), x.shape[1])
    dist.all_to_all_single(recv, send, r, s)
    y = expert(recv)
    back = x.new_empty(send.shape)
    dist.all_to_all_single(back, y, s, r)
    out = x.float()
    out.index_add_(0, tok, back.float() * gates.reshape(-1)[order][:, None])
    return out.to(x.dtype)


class PlainFixed:
    """Fixed capacity C per peer; `run()` eagerly, or `capture()` then `run()` replays the graph."""

    def __init__(self, x, topk, gates, expert: Callable, lut, world: int, capacity: int) -> None:
        self.x, self.topk, self.gates, self.expert, self.lut = x, topk, gates, expert, lut
        self.W, self.C = world, capacity
        T, H = x.shape
        self.send = x.new_zeros(world * capacity, H)
        self.recv = x.new_zeros(world * capacity, H)
        self.back = x.new_zeros(world * capacity, H)
        self.out = torch.empty_like(x)
        self.graph = None

    def _body(self) -> None:
        T, k = self.topk.shape
        W, C = self.W, self.C
        dest = self.lut[self.topk].reshape(-1)
        onehot = F.one_hot(dest, W)
        slot = (onehot.cumsum(0) * onehot).sum(1) - 1
        ok = slot < C
        pos = torch.where(ok, dest * C + slot, torch.full_like(slot, W * C))
        tok = torch.arange(T * k, device=dest.device) // k
        gidx = torch.zeros(W * C + 1, dtype=torch.int64, device=dest.device)
        gidx.scatter_(0, pos, tok)
        torch.index_select(self.x, 0, gidx[:W * C], out=self.send)
        dist.all_to_all_single(self.recv, self.send)
        y = self.expert(self.recv)
        dist.all_to_all_single(self.back, y)
        back = torch.cat([self.back, self.back.new_zeros(1, self.back.shape[1])])
        g = back.index_select(0, pos).view(T, k, -1).float() * self.gates.view(T, k, 1)
        self.out.copy_((self.x.float() + g.sum(1)).to(self.x.dtype))

    def capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._body()
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            self._body()
        torch.cuda.synchronize()
        self.graph = g

    def run(self):
        if self.graph is not None:
            self.graph.replay()
        else:
            self._body()
        return self.out
