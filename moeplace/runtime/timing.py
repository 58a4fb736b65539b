"""Timing on the device: medians of CUDA-event intervals, and the slowest rank of each repetition.

Each repetition starts at a collective every rank enters (so that ranks start together) and is timed on
the device; the per-repetition maximum over ranks is the step time, and the median of those is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from moeplace.runtime.deps import import_torch

torch = import_torch()
dist = torch.distributed


@dataclass
class StepClock:
    """Per-step durations on this rank: CUDA events on GPU, the host clock on CPU (gloo blocks)."""

    cuda: bool
    marks: list = field(default_factory=list)

    def mark(self) -> None:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.marks.append(ev)
        else:
            self.marks.append(time.perf_counter())

    def durations_us(self, pairs: list[tuple[int, int]]) -> list[float]:
        if self.cuda:
            return [self.marks[a].elapsed_time(self.marks[b]) * 1e3 for a, b in pairs]
        return [(self.marks[b] - self.marks[a]) * 1e6 for a, b in pairs]


def median(values: list[float]) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


_CYCLES_PER_US: list[float] = []


def hold_device(us: float = 200.0) -> None:
    """Keep the stream busy for `us` with a spin kernel, so that the host enqueues the timed work before
    the device reaches it: host launch latency then stays out of device-timed intervals."""
    if not _CYCLES_PER_US:
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        torch.cuda._sleep(1_000_000)
        b.record()
        b.synchronize()
        _CYCLES_PER_US.append(1_000_000 / max(a.elapsed_time(b) * 1e3, 1.0))
    torch.cuda._sleep(int(us * _CYCLES_PER_US[0]))


def time_collective(fn: Callable[[], None], *, reps: int = 30, warmup: int = 5, flag=None) -> list[float]:
    """Per-repetition microseconds of `fn`, the slowest rank of each repetition (every rank returns them)."""
    dev = torch.cuda.current_device()
    flag = flag if flag is not None else torch.zeros(1, device=dev)
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        hold_device()
        if dist.is_initialized():
            dist.all_reduce(flag)
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    mine = torch.tensor([s.elapsed_time(e) * 1e3 for s, e in zip(starts, ends)], device=dev)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(mine, op=dist.ReduceOp.MAX)
    return mine.tolist()


def time_local(fn: Callable[[], None], *, reps: int = 30, warmup: int = 5) -> list[float]:
    """Per-repetition microseconds of `fn` on this device alone."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        hold_device()
        a.record()
        fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b) * 1e3)
    return out


def graphed(fn: Callable[[], None]) -> Callable[[], None]:
    """`fn` captured as a CUDA graph (after two eager warm-ups on a side stream); returns its replay.

    Every rank must call this together when `fn` holds collectives (they are captured in the same order)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    torch.cuda.synchronize()
    return g.replay
