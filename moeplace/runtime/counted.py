"""The expert on the rows received: a grouped, masked SwiGLU that reads its row counts from device memory.

The fused step's receive buffer is [W x C, H]: peer p's rows sit at p C + [0, n_p), n_p <= C, the rest is
padding. `CountedSwiGLU` computes y at exactly those rows, with n = counts [W] (int32) read on the device:
no host synchronisation, static launches, so the whole thing is captured in a CUDA graph and replayed
with whatever counts the route kernel produced. The c = sum n_p valid rows are addressed compactly
(row r < c is segment p's row r - prefix_p, found in-kernel from the W counts) so that padding between
segments costs nothing and at most one M tile is partly empty:

    up    act [c, EH] = silu(x[rows] @ W_gate) * (x[rows] @ W_up)      (compact rows)
    down  y[rows] = act @ W_out                                         (scattered back to the segments)

Each GEMM is launched once per regime of c, and each launch reads c first and returns at once unless c
falls in its regime (a few µs for the launches that do nothing):

    small  c <= 128 (or the configured bound): one M tile of all rows, a narrow slice of output columns per
           program over tile-packed weights (`kernels.pack`), optionally split-K with fp32 partials summed
           in a fixed order by a count-aware pass: the weight-read-bound regime of `kernels.py`
    large  c above it: 128-row M tiles (grouped order for L2 reuse), 128-256 output columns, the plain
           [K, N] weights; M tiles at or beyond c return at once

Deterministic (no atomics), checked against float64 in `tests/runtime/test_gpu.py` and the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

from moeplace.runtime.deps import import_torch
from moeplace.runtime.kernels import GemmConfig, pack

torch = import_torch()

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - CPU installs
    triton = None


@dataclass(frozen=True)
class LargeConfig:
    block_m: int = 128
    block_n: int = 128
    block_k: int = 64
    group_m: int = 8
    num_warps: int = 8
    num_stages: int = 3
    persistent: bool = False  # a grid of (SMs x fit) programs looping over the tiles, else one per tile

    @property
    def label(self) -> str:
        tag = "P" if self.persistent else "L"
        return f"{tag}{self.block_m}x{self.block_n}k{self.block_k}g{self.group_m}w{self.num_warps}p{self.num_stages}"


if triton is not None:

    @triton.jit
    def _total(counts_ptr, W: tl.constexpr, WP: tl.constexpr):
        offs = tl.arange(0, WP)
        n = tl.load(counts_ptr + offs, mask=offs < W, other=0)
        return tl.sum(n, 0)

    @triton.jit
    def _seg_rows(counts_ptr, r, C, W: tl.constexpr, WP: tl.constexpr):
        """Buffer row of compact row r (vector): segment p's row r - prefix_p."""
        offs = tl.arange(0, WP)
        n = tl.load(counts_ptr + offs, mask=offs < W, other=0)
        incl = tl.cumsum(n, 0)
        excl = incl - n
        seg = tl.sum((incl[None, :] <= r[:, None]).to(tl.int32), 1)
        base = tl.sum(tl.where(offs[None, :] == seg[:, None], excl[None, :], 0), 1)
        return seg.to(tl.int64) * C + (r - base)

    @triton.jit
    def _small_kernel(a_ptr, wp_ptr, out_ptr, counts_ptr, N, K, C, stride_s, LO, HI,
                      W: tl.constexpr, WP: tl.constexpr, K_PER_SPLIT: tl.constexpr, BLOCK_M: tl.constexpr,
                      BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GATED: tl.constexpr, DIRECT: tl.constexpr,
                      SWAP: tl.constexpr, GATHER: tl.constexpr, SCATTER: tl.constexpr):
        """`kernels._gemm_kernel` on the compact rows [0, c), c read from counts; returns unless LO < c <= HI."""
        c = _total(counts_ptr, W, WP)
        if (c <= LO) | (c > HI):
            return
        if tl.program_id(0) * BLOCK_M >= c:
            return
        pid_n = tl.program_id(1)
        pid_k = tl.program_id(2)
        r = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        ok = r < c
        if GATHER:
            src = tl.where(ok, _seg_rows(counts_ptr, r, C, W, WP), 0)
        else:
            src = r.to(tl.int64)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        TILE: tl.constexpr = BLOCK_N * BLOCK_K
        G: tl.constexpr = 2 if GATED else 1
        offs_tile = tl.arange(0, BLOCK_N)[:, None] * BLOCK_K + tl.arange(0, BLOCK_K)[None, :]
        kt0 = pid_k * (K_PER_SPLIT // BLOCK_K)
        tiles = wp_ptr + (pid_n * (K // BLOCK_K) + kt0) * G * TILE
        k0 = pid_k * K_PER_SPLIT
        if SWAP:
            acc_t = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
            acc_ut = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
            for i in range(0, K_PER_SPLIT // BLOCK_K):
                offs_k = k0 + i * BLOCK_K + tl.arange(0, BLOCK_K)
                a = tl.load(a_ptr + src[:, None] * K + offs_k[None, :], mask=ok[:, None], other=0.0)
                w = tl.load(tiles + i * G * TILE + offs_tile)
                acc_t += tl.dot(w, tl.trans(a))
                if GATED:
                    wu = tl.load(tiles + i * G * TILE + TILE + offs_tile)
                    acc_ut += tl.dot(wu, tl.trans(a))
            acc = tl.trans(acc_t)
            acc_u = tl.trans(acc_ut)
        else:
            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            acc_u = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            for i in range(0, K_PER_SPLIT // BLOCK_K):
                offs_k = k0 + i * BLOCK_K + tl.arange(0, BLOCK_K)
                a = tl.load(a_ptr + src[:, None] * K + offs_k[None, :], mask=ok[:, None], other=0.0)
                w = tl.load(tiles + i * G * TILE + offs_tile)
                acc += tl.dot(a, tl.trans(w))
                if GATED:
                    wu = tl.load(tiles + i * G * TILE + TILE + offs_tile)
                    acc_u += tl.dot(a, tl.trans(wu))
        if DIRECT:
            if GATED:
                acc = acc * tl.sigmoid(acc) * acc_u
            if SCATTER:
                dst = tl.where(ok, _seg_rows(counts_ptr, r, C, W, WP), 0)
            else:
                dst = r.to(tl.int64)
            tl.store(out_ptr + dst[:, None] * N + offs_n[None, :], acc.to(out_ptr.dtype.element_ty),
                     mask=ok[:, None])
        else:
            base = out_ptr + pid_k * stride_s
            if GATED:
                tl.store(base + r[:, None] * (2 * N) + offs_n[None, :], acc, mask=ok[:, None])
                tl.store(base + r[:, None] * (2 * N) + N + offs_n[None, :], acc_u, mask=ok[:, None])
            else:
                tl.store(base + r[:, None] * N + offs_n[None, :], acc, mask=ok[:, None])

    @triton.jit
    def _act_kernel(part_ptr, act_ptr, counts_ptr, EH, stride_s, LO, HI, W: tl.constexpr, WP: tl.constexpr,
                    SPLITS: tl.constexpr, BLOCK: tl.constexpr):
        """act [r, :] = silu(sum_s gate_s) * sum_s up_s for compact rows r < c, in a fixed order."""
        c = _total(counts_ptr, W, WP)
        m = tl.program_id(0)
        if (c <= LO) | (c > HI) | (m >= c):
            return
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < EH
        g = tl.zeros((BLOCK,), dtype=tl.float32)
        u = tl.zeros((BLOCK,), dtype=tl.float32)
        for s in tl.static_range(SPLITS):
            row = part_ptr + s * stride_s + m * 2 * EH
            g += tl.load(row + offs, mask=mask, other=0.0)
            u += tl.load(row + EH + offs, mask=mask, other=0.0)
        tl.store(act_ptr + m * EH + offs, (g * tl.sigmoid(g) * u).to(act_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _reduce_kernel(part_ptr, y_ptr, counts_ptr, N, C, stride_s, LO, HI, W: tl.constexpr, WP: tl.constexpr,
                       SPLITS: tl.constexpr, BLOCK: tl.constexpr):
        """y[buffer row of r, :] = sum_s partials[s, r, :] for compact rows r < c."""
        c = _total(counts_ptr, W, WP)
        m = tl.program_id(0)
        if (c <= LO) | (c > HI) | (m >= c):
            return
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        v = tl.zeros((BLOCK,), dtype=tl.float32)
        for s in tl.static_range(SPLITS):
            v += tl.load(part_ptr + s * stride_s + m * N + offs, mask=mask, other=0.0)
        dst = tl.max(_seg_rows(counts_ptr, m + tl.zeros((2,), dtype=tl.int32), C, W, WP), 0)
        tl.store(y_ptr + dst * N + offs, v.to(y_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _large_kernel(a_ptr, w_ptr, out_ptr, counts_ptr, N, C, ldw, LO, HI, K: tl.constexpr,
                      W: tl.constexpr, WP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                      BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr, GATED: tl.constexpr, GATHER: tl.constexpr,
                      SCATTER: tl.constexpr):
        """out = a[rows] @ w [K, ldw] (gated: silu(a @ w[:, :N]) * (a @ w[:, N:2N])) for compact rows < c,
        when LO < c <= HI. Persistent: the programs loop over the tiles of the c valid rows only, in grouped
        order (GROUP_M M tiles share each weight tile while it is in L2)."""
        c = _total(counts_ptr, W, WP)
        if (c <= LO) | (c > HI):
            return
        num_m = tl.cdiv(c, BLOCK_M)
        num_n = N // BLOCK_N
        group = GROUP_M * num_n
        for t in range(tl.program_id(0), num_m * num_n, tl.num_programs(0)):
            first_m = (t // group) * GROUP_M
            size_m = tl.minimum(num_m - first_m, GROUP_M)
            pid_m = first_m + (t % group) % size_m
            pid_n = (t % group) // size_m
            r = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
            ok = r < c
            if GATHER:
                src = tl.where(ok, _seg_rows(counts_ptr, r, C, W, WP), 0)
            else:
                src = r.to(tl.int64)
            offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            acc_u = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            for k in range(0, K, BLOCK_K):
                offs_k = k + tl.arange(0, BLOCK_K)
                a = tl.load(a_ptr + src[:, None] * K + offs_k[None, :], mask=ok[:, None], other=0.0)
                w = tl.load(w_ptr + offs_k[:, None] * ldw + offs_n[None, :])
                acc += tl.dot(a, w)
                if GATED:
                    wu = tl.load(w_ptr + offs_k[:, None] * ldw + N + offs_n[None, :])
                    acc_u += tl.dot(a, wu)
            if GATED:
                acc = acc * tl.sigmoid(acc) * acc_u
            if SCATTER:
                dst = tl.where(ok, _seg_rows(counts_ptr, r, C, W, WP), 0)
            else:
                dst = r.to(tl.int64)
            tl.store(out_ptr + dst[:, None] * N + offs_n[None, :], acc.to(out_ptr.dtype.element_ty),
                     mask=ok[:, None])


def _wp(W: int) -> int:
    return max(2, 1 << (W - 1).bit_length())


@dataclass(frozen=True)
class SmallRegime:
    """c <= hi (above the previous regime): `kernels.py`'s tiling with one M tile of up to hi rows."""

    hi: int
    up: GemmConfig
    down: GemmConfig


@dataclass(frozen=True)
class LargeRegime:
    """c <= hi (None: any c above the previous regime): persistent 128-row-class tiles."""

    hi: int | None
    up: LargeConfig
    down: LargeConfig


class CountedSwiGLU:
    """y [W C, H] = SwiGLU expert at rows p C + [0, counts[p]) of x [W C, H]; other rows of y untouched.

    w_in [H, 2 EH] (gate | up), w_out [EH, H] as in `Expert`. small: regimes by ascending bound (their up
    configs share one tile packing, their down configs another: one packed copy of the weights), then
    large: regimes by ascending bound, the last unbounded. Buffers are static: CUDA-graph safe."""

    def __init__(self, w_in, w_out, *, segments: int, rows_per_segment: int,
                 small: tuple[SmallRegime, ...] = (), large: tuple[LargeRegime, ...] | None = None) -> None:
        self.H, self.EH = int(w_out.shape[1]), int(w_out.shape[0])
        self.W, self.C = segments, rows_per_segment
        cap = segments * rows_per_segment
        self.cap = cap
        large = large if large is not None else (LargeRegime(None, LargeConfig(), LargeConfig(block_n=256)),)
        self.small, self.large = tuple(small), tuple(large)
        if not self.large or self.large[-1].hi is not None:
            raise ValueError("the last large regime must be unbounded (hi None)")
        for reg in self.large:
            for cfg, N, K in ((reg.up, self.EH, self.H), (reg.down, self.H, self.EH)):
                if N % cfg.block_n or K % cfg.block_k:
                    raise ValueError(f"large config {cfg.label} does not divide N={N}, K={K}")
        self.w_in, self.w_out = w_in, w_out
        dev, dt = w_in.device, w_in.dtype
        self.sms = torch.cuda.get_device_properties(dev).multi_processor_count if w_in.is_cuda else 4
        self.act = torch.empty(cap, self.EH, device=dev, dtype=dt)
        self.y = torch.empty(cap, self.H, device=dev, dtype=dt)
        self.small_max = min(self.small[-1].hi, cap) if self.small else 0
        self.part_up = self.part_down = None
        if self.small:
            ups, downs = {(r.up.block_n, r.up.block_k) for r in small}, {(r.down.block_n, r.down.block_k) for r in small}
            if len(ups) > 1 or len(downs) > 1:
                raise ValueError("small regimes must share one tile packing per GEMM")
            for reg in self.small:
                for cfg, N, K in ((reg.up, self.EH, self.H), (reg.down, self.H, self.EH)):
                    if K % (cfg.block_k * cfg.split_k) or N % cfg.block_n:
                        raise ValueError(f"GEMM config {cfg.label} does not divide K={K}, N={N}")
            self.wp_in, self.wp_out = pack(w_in, small[0].up, gated=True), pack(w_out, small[0].down, gated=False)
            su, sd = max(r.up.split_k for r in small), max(r.down.split_k for r in small)
            rows = self.small_max
            if su > 1:
                self.part_up = torch.empty(su, rows, 2 * self.EH, device=dev, dtype=torch.float32)
            if sd > 1:
                self.part_down = torch.empty(sd, rows, self.H, device=dev, dtype=torch.float32)

    @property
    def label(self) -> str:
        parts = [f"<={r.hi}:{r.up.label}/{r.down.label}" for r in self.small]
        parts += [f"<={r.hi or 'cap'}:{r.up.label}/{r.down.label}" for r in self.large]
        return "counted[" + " ".join(parts) + "]"

    def _bounds(self):
        lo = 0
        for reg in (*self.small, *self.large):
            hi = reg.hi if reg.hi is not None else 2 ** 30
            if lo < self.cap:
                yield reg, lo, min(hi, 2 ** 30)
            lo = hi

    def _small(self, a, wp, out, counts, N, K, cfg: GemmConfig, lo: int, hi: int, gated: bool, gather: bool,
               scatter: bool):
        rows = min(hi, self.cap)
        bm = max(16, min(128, 1 << (rows - 1).bit_length()))  # above 128 rows: 128-row tiles, M fastest
        direct = cfg.split_k == 1
        part = out if direct else (self.part_up if gated else self.part_down)
        stride = 0 if direct else part.stride(0)
        grid = (triton.cdiv(rows, bm), N // cfg.block_n, cfg.split_k)
        _small_kernel[grid](a, wp, part, counts, N, K, self.C, stride, lo, hi, W=self.W, WP=_wp(self.W),
                            K_PER_SPLIT=K // cfg.split_k, BLOCK_M=bm, BLOCK_N=cfg.block_n,
                            BLOCK_K=cfg.block_k, GATED=gated, DIRECT=direct, SWAP=cfg.swap, GATHER=gather,
                            SCATTER=scatter, num_warps=cfg.num_warps, num_stages=cfg.num_stages)
        if direct:
            return
        if gated:
            _act_kernel[(rows, triton.cdiv(N, 1024))](part, out, counts, N, stride, lo, hi, W=self.W,
                                                      WP=_wp(self.W), SPLITS=cfg.split_k, BLOCK=1024, num_warps=4)
        else:
            _reduce_kernel[(rows, triton.cdiv(N, 1024))](part, out, counts, N, self.C, stride, lo, hi, W=self.W,
                                                         WP=_wp(self.W), SPLITS=cfg.split_k, BLOCK=1024, num_warps=4)

    def _large(self, a, w, out, counts, N, K, cfg: LargeConfig, lo: int, hi: int, gated: bool, gather: bool,
               scatter: bool):
        smem = cfg.num_stages * (cfg.block_m + (2 if gated else 1) * cfg.block_n) * cfg.block_k * 2
        per_sm = max(1, 220_000 // max(smem, 1))
        tiles = triton.cdiv(min(hi, self.cap), cfg.block_m) * (N // cfg.block_n)
        grid = (max(1, min(tiles, self.sms * per_sm) if cfg.persistent else tiles),)
        _large_kernel[grid](a, w, out, counts, N, self.C, int(w.shape[1]), lo, hi, K=K, W=self.W,
                            WP=_wp(self.W), BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k,
                            GROUP_M=cfg.group_m, GATED=gated, GATHER=gather, SCATTER=scatter,
                            num_warps=cfg.num_warps, num_stages=cfg.num_stages)

    def __call__(self, x, counts, out=None):
        """y [W C, H] for x [W C, H] and counts int32 [W] on the device, into `out` (default: a static buffer,
        so give each micro-batch in flight its own)."""
        assert x.shape == (self.cap, self.H) and x.is_contiguous() and counts.dtype == torch.int32
        y = self.y if out is None else out
        regimes = list(self._bounds())
        for reg, lo, hi in regimes:
            if isinstance(reg, SmallRegime):
                self._small(x, self.wp_in, self.act, counts, self.EH, self.H, reg.up, lo, hi, True, True, False)
            else:
                self._large(x, self.w_in, self.act, counts, self.EH, self.H, reg.up, lo, hi, True, True, False)
        for reg, lo, hi in regimes:
            if isinstance(reg, SmallRegime):
                self._small(self.act, self.wp_out, y, counts, self.H, self.EH, reg.down, lo, hi, False, False, True)
            else:
                self._large(self.act, self.w_out, y, counts, self.H, self.EH, reg.down, lo, hi, False, False, True)
        return y


_UP, _DOWN = GemmConfig(64, 64, 4, 4, 4), GemmConfig(64, 128, 1, 4, 4, swap=True)  # H200's 128-token winners
SMALL_DEFAULT = (SmallRegime(32, _UP, _DOWN), SmallRegime(128, _UP, _DOWN))
_MID = LargeConfig(64, 64, 64, 8, 4, 4, persistent=True)
_BIG = LargeRegime(None, LargeConfig(), LargeConfig(block_n=256))
LARGE_DEFAULT = (LargeRegime(512, _MID, _MID), _BIG)
# Regime layouts `tune_counted` chooses among (each launch that is not c's own costs 2-4 µs)
LAYOUTS = {
    "small128+large": (SMALL_DEFAULT[1:], (_BIG,)),
    "small128+mid512+large": (SMALL_DEFAULT[1:], LARGE_DEFAULT),
    "small32+small128+mid512+large": (SMALL_DEFAULT, LARGE_DEFAULT),
    "small128+mid512(grid)+large": (SMALL_DEFAULT[1:], (LargeRegime(512, LargeConfig(64, 64, 64, 8, 4, 4),
                                                                    LargeConfig(64, 64, 64, 8, 4, 4)), _BIG)),
    "small128+small512+large": ((SMALL_DEFAULT[1], SmallRegime(512, _UP, _DOWN)), (_BIG,)),
}
PROBE_COUNTS = (16, 64, 128, 256, 512, 1024, 4096)
LARGE_SMALL_DIMS = (LargeRegime(None, LargeConfig(64, 32, 32, 4, 4, 2), LargeConfig(64, 32, 32, 4, 4, 2)),
                    LargeRegime(None, LargeConfig(16, 16, 16, 2, 4, 2), LargeConfig(16, 16, 16, 2, 4, 2)))


def build_counted(expert, segments: int, rows_per_segment: int,
                  small: tuple[SmallRegime, ...] | None = None) -> CountedSwiGLU | None:
    """The counted expert with the default regimes, or the first fallbacks that divide the expert's dims
    (None: none do, or no Triton / CUDA), checked against float64 on random counts (None when it differs
    by more than 1e-2)."""
    if triton is None or expert.activation != "swiglu" or not expert.w_in.is_cuda:
        return None
    larges = [LARGE_DEFAULT] + [(r,) for r in LARGE_SMALL_DIMS]
    for sm in (small if small is not None else SMALL_DEFAULT, ()):
        for lg in larges:
            try:
                fn = CountedSwiGLU(expert.w_in, expert.w_out, segments=segments, rows_per_segment=rows_per_segment,
                                   small=sm, large=lg)
            except ValueError:
                continue
            if counted_error(fn, expert) <= 1e-2:
                return fn
    return None


def tune_counted(expert, segments: int, rows_per_segment: int, baseline_us: dict[int, float] | None = None,
                 probes=PROBE_COUNTS, layouts: dict | None = None) -> tuple[CountedSwiGLU | None, dict]:
    """The fastest regime layout (`LAYOUTS`) by measurement: each timed as one CUDA graph at the probe
    counts up to the capacity; with `baseline_us` (the expert at exactly c, µs) the layout with the lowest
    worst time / (1.15 baseline + 5 µs) wins, else the lowest total time. Returns (expert, what was timed)."""
    from moeplace.runtime.expertops import graph_time_us

    if triton is None or expert.activation != "swiglu" or not expert.w_in.is_cuda:
        return None, {}
    cap = segments * rows_per_segment
    g = torch.Generator(device="cpu").manual_seed(1)
    x = torch.randn(cap, expert.w_in.shape[0], generator=g).to(expert.w_in.device, expert.w_in.dtype)
    counts = torch.zeros(segments, dtype=torch.int32, device=x.device)
    out = torch.empty_like(x)
    tried: dict = {}
    best = None
    for name, (small, large) in (layouts or LAYOUTS).items():
        try:
            fn = CountedSwiGLU(expert.w_in, expert.w_out, segments=segments, rows_per_segment=rows_per_segment,
                               small=small, large=large)
            if counted_error(fn, expert) > 1e-2:
                tried[name] = "differs from float64"
                continue
            times = {}
            for c in [p for p in probes if p <= cap]:
                counts.copy_(_split(c, segments, rows_per_segment, g))
                times[c] = round(graph_time_us(lambda t: fn(t, counts, out=out), x, reps=15), 2)
        except Exception as exc:  # noqa: BLE001 - a layout that does not compile or fit is skipped, and said so
            tried[name] = str(exc).split("\n")[0][:100]
            continue
        if baseline_us:
            score = max(t / (1.15 * baseline_us[c] + 5.0) for c, t in times.items() if c in baseline_us)
        else:
            score = sum(times.values())
        tried[name] = {"us": times, "score": round(score, 4)}
        if best is None or score < best[0]:
            best = (score, name, fn)
    if best is None:
        return build_counted(expert, segments, rows_per_segment), tried
    tried["chosen"] = best[1]
    return best[2], tried


def counted_error(fn: CountedSwiGLU, expert, seed: int = 0) -> float:
    """Worst relative difference from float64 over three count vectors (one in each regime, one at capacity)."""
    from moeplace.runtime.experts import expert_forward

    g = torch.Generator(device="cpu").manual_seed(seed)
    W, C = fn.W, fn.C
    worst = 0.0
    bounds = [hi for _, _, hi in fn._bounds()][:-1]
    for total in sorted({min(max(1, t), fn.cap) for t in [1, *bounds, *(b + 1 for b in bounds), fn.cap]}):
        counts = _split(total, W, C, g)
        x = torch.randn(fn.cap, fn.H, generator=g).to(expert.w_in.device, expert.w_in.dtype)
        out = torch.full_like(x, float("nan"))
        fn(x, counts.to(x.device), out=out)
        rows = torch.cat([torch.arange(p * C, p * C + int(n)) for p, n in enumerate(counts.tolist())]).to(x.device)
        ref = expert_forward(x[rows].double(), expert.w_in.double(), expert.w_out.double(), "swiglu")
        got = out[rows].double()
        err = float(torch.linalg.vector_norm(got - ref) / max(float(torch.linalg.vector_norm(ref)), 1e-30))
        worst = max(worst, err if err == err else float("inf"))
    return worst


def _split(total: int, W: int, C: int, g) -> "torch.Tensor":
    """int32 [W]: `total` rows over W segments of at most C, unevenly (seeded)."""
    total = min(total, W * C)
    w = torch.rand(W, generator=g) + 0.2
    n = torch.minimum(torch.floor(w / w.sum() * total), torch.tensor(float(C))).to(torch.int64)
    p = 0
    while int(n.sum()) < total:
        if n[p] < C:
            n[p] += 1
        p = (p + 1) % W
    return n.to(torch.int32)
