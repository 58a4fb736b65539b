"""Which kernel runs an expert at n tokens: cuBLAS through torch, or the split-K Triton kernel, by measurement.

`tune_expert` times every candidate on the device as a CUDA graph (median of replays, events) and keeps the
fastest whose output matches cuBLAS's (relative difference <= 1e-2 on random bf16 input; a kernel that is
fast and wrong is rejected and said so); the choice and every candidate's time are returned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from moeplace.runtime import kernels
from moeplace.runtime.deps import import_torch
from moeplace.runtime.experts import Expert

torch = import_torch()

SPLITK_MAX_TOKENS = 512


@dataclass(frozen=True)
class Choice:
    name: str
    fn: Callable
    us: float
    tried: dict[str, float]


def graph_time_us(fn: Callable, x, *, reps: int = 30, warm: int = 3) -> float:
    """Median microseconds of `fn(x)` replayed as a CUDA graph (rotating nothing: weights dominate)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warm):
            fn(x)
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn(x)
    for _ in range(warm):
        g.replay()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3)
    times.sort()
    return times[len(times) // 2]


def tune_expert(expert: Expert, n: int, *, max_tokens: int | None = None, try_splitk: bool = True) -> Choice:
    """Fastest implementation of `expert` at exactly n tokens on this device."""
    x = torch.randn(n, expert.w_in.shape[0], device=expert.w_in.device, dtype=expert.w_in.dtype)
    tried: dict[str, float] = {}
    best: tuple[float, str, Callable] | None = None

    reference = expert(x).float()
    ref_norm = float(torch.linalg.vector_norm(reference))

    def consider(name: str, fn: Callable) -> None:
        nonlocal best
        try:
            t = graph_time_us(fn, x)
            diff = float(torch.linalg.vector_norm(fn(x).float() - reference)) / max(ref_norm, 1e-30)
        except Exception as exc:  # noqa: BLE001 - a config that does not compile is skipped, and said so
            tried[name] = float("nan")
            tried[f"{name}.error"] = str(exc).split("\n")[0][:80]  # type: ignore[assignment]
            return
        tried[name] = round(t, 2)
        if not diff <= 1e-2:
            tried[f"{name}.rejected"] = f"differs from cuBLAS by {diff:.2g}"  # type: ignore[assignment]
            return
        if best is None or t < best[0]:
            best = (t, name, fn)

    consider("cublas", expert)
    if try_splitk and expert.activation == "swiglu" and kernels.available() and n <= SPLITK_MAX_TOKENS:
        for up, down in kernels.candidate_configs(n):
            try:
                fn = kernels.SplitKSwiGLU(expert.w_in, expert.w_out, max(n, max_tokens or n), up, down)
            except ValueError:
                continue
            consider(f"splitk[bn{up.block_n},bk{up.block_k},s{up.split_k}/{down.split_k}]", fn)
    assert best is not None
    return Choice(best[1], best[2], round(best[0], 2), tried)
