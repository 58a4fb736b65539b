"""An expert behind static buffers: one CUDA graph per token bucket, replayed; eager beyond the largest.

Buckets are powers of two from 16 tokens up to `max_tokens`; a call with n tokens fills the first n rows
of the bucket's input buffer and replays its graph, so the kernels see the same shapes every step. On the
CPU, or with graphs off, the expert runs eagerly on exactly n rows.
"""

from __future__ import annotations

from typing import Any

from moeplace.runtime.deps import import_torch
from moeplace.runtime.experts import Expert

torch = import_torch()

MIN_BUCKET = 16


def bucket(n: int) -> int:
    b = MIN_BUCKET
    while b < n:
        b *= 2
    return b


class ExpertRunner:
    def __init__(self, expert: Expert, *, graphs: bool, max_tokens: int, forward: Any = None) -> None:
        self.expert = expert
        w = expert.w_in
        self.device = w.device
        self.dtype = w.dtype
        self.hidden = int(w.shape[0])
        self.graphs = graphs and self.device.type == "cuda"
        self.max_bucket = bucket(max_tokens)
        self.forward = forward or expert
        self._graphs: dict[int, tuple[Any, Any, Any]] = {}
        self.replays = 0
        self.eager_calls = 0

    def _capture(self, b: int):
        x = torch.zeros(b, self.hidden, device=self.device, dtype=self.dtype)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):
                self.forward(x)
        torch.cuda.current_stream(self.device).wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            y = self.forward(x)
        self._graphs[b] = (g, x, y)
        return self._graphs[b]

    def warm(self, n: int) -> None:
        """Capture the bucket for n tokens ahead of the timed steps."""
        if self.graphs and 0 < n <= self.max_bucket and bucket(n) not in self._graphs:
            self._capture(bucket(n))

    def __call__(self, x):
        n = int(x.shape[0])
        if n == 0:
            return x.new_zeros(0, self.hidden)
        if not self.graphs or n > self.max_bucket:
            self.eager_calls += 1
            return self.forward(x)
        b = bucket(n)
        g, xin, yout = self._graphs.get(b) or self._capture(b)
        xin[:n].copy_(x)
        g.replay()
        self.replays += 1
        return yout[:n]
