"""Which kernel runs an expert at n tokens: cuBLAS through torch, or the small-batch Triton kernel, by measurement.

`tune_expert` times every candidate on the device as a CUDA graph (median of replays, events) and keeps the
fastest whose output matches a float64 reference (relative difference <= 1e-2 on random bf16 input; a kernel
that is fast and wrong is rejected and said so); the choice and every candidate's time are returned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from moeplace.runtime import kernels
from moeplace.runtime.deps import import_torch
from moeplace.runtime.experts import Expert, expert_forward

torch = import_torch()

TRITON_MAX_TOKENS = 128  # above, cuBLAS won at every size measured (H200, seed dims)


@dataclass(frozen=True)
class Choice:
    name: str
    fn: Callable
    us: float
    tried: dict[str, float]


def _captured(fns: list[Callable], x, warm: int):
    """One CUDA graph of `fns` applied to x in turn, after `warm` eager rounds on a side stream, replayed
    `warm` times."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warm):
            for fn in fns:
                fn(x)
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for fn in fns:
            fn(x)
    for _ in range(warm):
        g.replay()
    return g


def _median_us(g, samples: int, replays: int, calls: int) -> float:
    """Median over `samples` of the event-timed microseconds of `replays` back-to-back replays, per call."""
    times = []
    for _ in range(samples):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(replays):
            g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3 / (replays * calls))
    times.sort()
    return times[len(times) // 2]


def graph_time_us(fn: Callable, x, *, reps: int = 30, warm: int = 3) -> float:
    """Median microseconds of `fn(x)` replayed alone as a CUDA graph (rotating nothing: weights dominate)."""
    return _median_us(_captured([fn], x, warm), reps, 1, 1)


def _rel_diff(out, reference, ref_norm: float) -> float:
    return float(torch.linalg.vector_norm(out.float() - reference)) / max(ref_norm, 1e-30)


def tune_expert(expert: Expert, n: int, *, max_tokens: int | None = None, try_triton: bool = True) -> Choice:
    """Fastest implementation of `expert` at exactly n tokens on this device.

    The Triton kernel's two GEMMs are tuned separately (each config timed alone as a graph, the best up and
    the best down kept), then the pair is timed whole against cuBLAS. The correctness gate compares each
    candidate with a float64 reference of the same bf16 weights and input, and cuBLAS is held to the same
    gate, so that the tolerance is meaningful: a candidate must be no less accurate than 1e-2 relative."""
    x = torch.randn(n, expert.w_in.shape[0], device=expert.w_in.device, dtype=expert.w_in.dtype)
    tried: dict[str, float] = {}
    best: tuple[float, str, Callable] | None = None

    reference = expert_forward(x.double(), expert.w_in.double(), expert.w_out.double(), expert.activation)
    ref_norm = float(torch.linalg.vector_norm(reference))

    def consider(name: str, fn: Callable) -> None:
        nonlocal best
        try:
            t = graph_time_us(fn, x)
            diff = _rel_diff(fn(x), reference, ref_norm)
        except Exception as exc:  # noqa: BLE001 - a config that does not compile is skipped, and said so
            tried[name] = float("nan")
            tried[f"{name}.error"] = str(exc).split("\n")[0][:80]  # type: ignore[assignment]
            return
        tried[name] = round(t, 2)
        tried[f"{name}.error_rel"] = float(f"{diff:.2g}")
        if not diff <= 1e-2:
            tried[f"{name}.rejected"] = f"differs from float64 by {diff:.2g}"  # type: ignore[assignment]
            return
        if best is None or t < best[0]:
            best = (t, name, fn)

    consider("cublas", expert)
    if try_triton and expert.activation == "swiglu" and kernels.available() and n <= TRITON_MAX_TOKENS:
        cap = max(n, max_tokens or n)
        fn = _tuned_triton(expert, n, cap, x, tried)
        if fn is not None:
            consider(f"triton[{fn.up_cfg.label}/{fn.down_cfg.label}]", fn)
    assert best is not None
    return Choice(best[1], best[2], round(best[0], 2), tried)


def _tuned_triton(expert: Expert, n: int, cap: int, x, tried: dict) -> kernels.SmallBatchSwiGLU | None:
    """The Triton expert with the fastest up and the fastest down config at n tokens, each timed alone."""
    def fastest(part: str, configs, make, arg) -> kernels.GemmConfig | None:
        found: tuple[float, kernels.GemmConfig] | None = None
        for c in configs:
            try:
                fn = make(c)
                t = graph_time_us(fn, arg, reps=15)
            except Exception:  # noqa: BLE001 - configs that do not divide or compile are skipped
                continue
            tried[f"{part}.{c.label}"] = round(t, 2)
            if found is None or t < found[0]:
                found = (t, c)
        return None if found is None else found[1]

    H, EH = int(expert.w_in.shape[0]), expert.expert_hidden
    if not kernels.up_configs(H, EH) or not kernels.down_configs(H, EH):
        return None
    base_up, base_down = kernels.up_configs(H, EH)[0], kernels.down_configs(H, EH)[0]
    try:
        kernels.SmallBatchSwiGLU(expert.w_in, expert.w_out, cap, base_up, base_down)
    except ValueError:
        return None
    act = torch.randn(n, expert.expert_hidden, device=x.device, dtype=x.dtype)
    up = fastest("up", kernels.up_configs(H, EH),
                 lambda c: kernels.SmallBatchSwiGLU(expert.w_in, expert.w_out, cap, c, base_down).up, x)
    down = fastest("down", kernels.down_configs(H, EH),
                   lambda c: kernels.SmallBatchSwiGLU(expert.w_in, expert.w_out, cap, base_up, c).down, act)
    if up is None or down is None:
        return None
    return kernels.SmallBatchSwiGLU(expert.w_in, expert.w_out, cap, up, down)


def pipelined_time_us(fns: list[Callable], x, *, replays: int = 20, warm: int = 3) -> float:
    """Median microseconds per call of `fns` run back to back inside one CUDA graph, replayed `replays` times
    between two events: the kernels' own time, without the host's graph-launch latency that a lone replay
    on an idle GPU shows (10-16 µs on H200), and with every fn on its own weights, so that the set of weights
    (4 x 88 MB for the seed) is larger than L2 and no call finds its weights cached."""
    return _median_us(_captured(fns, x, warm), 5, replays, len(fns))
