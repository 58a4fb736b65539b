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

    @property
    def label(self) -> str:
        return f"L{self.block_m}x{self.block_n}k{self.block_k}g{self.group_m}w{self.num_warps}p{self.num_stages}"


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
    def _large_kernel(a_ptr, w_ptr, out_ptr, counts_ptr, N, C, ldw, LO, K: tl.constexpr,
                      W: tl.constexpr, WP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                      BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr, GATED: tl.constexpr, GATHER: tl.constexpr,
                      SCATTER: tl.constexpr):
        """out = a[rows] @ w [K, ldw] (gated: silu(a @ w[:, :N]) * (a @ w[:, N:2N])) for compact rows < c,
        when c > LO; M tiles at or past c return at once. Grouped program order: GROUP_M M tiles share
        each weight tile while it is in L2."""
        c = _total(counts_ptr, W, WP)
        if c <= LO:
            return
        pid = tl.program_id(0)
        num_m = tl.cdiv(C * W, BLOCK_M)
        num_n = N // BLOCK_N
        group = GROUP_M * num_n
        first_m = (pid // group) * GROUP_M
        size_m = tl.minimum(num_m - first_m, GROUP_M)
        pid_m = first_m + (pid % group) % size_m
        pid_n = (pid % group) // size_m
        if pid_m * BLOCK_M >= c:
            return
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
        tl.store(out_ptr + dst[:, None] * N + offs_n[None, :], acc.to(out_ptr.dtype.element_ty), mask=ok[:, None])


def _wp(W: int) -> int:
    return max(2, 1 << (W - 1).bit_length())


class CountedSwiGLU:
    """y [W C, H] = SwiGLU expert at rows p C + [0, counts[p]) of x [W C, H]; other rows of y untouched.

    w_in [H, 2 EH] (gate | up), w_out [EH, H] as in `Expert`. small: (up, down) `GemmConfig`s for
    c <= small_max (None: the large kernel runs every c). Buffers are static: CUDA-graph safe."""

    def __init__(self, w_in, w_out, *, segments: int, rows_per_segment: int,
                 small: tuple[GemmConfig, GemmConfig] | None, small_max: int = 128,
                 large_up: LargeConfig = LargeConfig(), large_down: LargeConfig = LargeConfig(block_n=256)) -> None:
        self.H, self.EH = int(w_out.shape[1]), int(w_out.shape[0])
        self.W, self.C = segments, rows_per_segment
        cap = segments * rows_per_segment
        self.cap, self.small_max = cap, (small_max if small is not None else 0)
        self.small, self.large_up, self.large_down = small, large_up, large_down
        for cfg, N, K in ((large_up, self.EH, self.H), (large_down, self.H, self.EH)):
            if N % cfg.block_n or K % cfg.block_k:
                raise ValueError(f"large config {cfg.label} does not divide N={N}, K={K}")
        self.w_in, self.w_out = w_in, w_out
        dev, dt = w_in.device, w_in.dtype
        self.act = torch.empty(cap, self.EH, device=dev, dtype=dt)
        self.y = torch.empty(cap, self.H, device=dev, dtype=dt)
        self.part_up = self.part_down = None
        if small is not None:
            up, down = small
            sm = min(small_max, cap)
            for cfg, N, K in ((up, self.EH, self.H), (down, self.H, self.EH)):
                if K % (cfg.block_k * cfg.split_k) or N % cfg.block_n:
                    raise ValueError(f"GEMM config {cfg.label} does not divide K={K}, N={N}")
            self.wp_in, self.wp_out = pack(w_in, up, gated=True), pack(w_out, down, gated=False)
            self.bm = max(16, 1 << (sm - 1).bit_length())
            if up.split_k > 1:
                self.part_up = torch.empty(up.split_k, sm, 2 * self.EH, device=dev, dtype=torch.float32)
            if down.split_k > 1:
                self.part_down = torch.empty(down.split_k, sm, self.H, device=dev, dtype=torch.float32)

    @property
    def label(self) -> str:
        small = f"{self.small[0].label}/{self.small[1].label}<={self.small_max}+" if self.small else ""
        return f"counted[{small}{self.large_up.label}/{self.large_down.label}]"

    def _small(self, a, wp, out, counts, N, K, cfg: GemmConfig, gated: bool, gather: bool, scatter: bool):
        hi = min(self.small_max, self.cap)
        direct = cfg.split_k == 1
        part = out if direct else (self.part_up if gated else self.part_down)
        stride = 0 if direct else part.stride(0)
        grid = (triton.cdiv(hi, self.bm), N // cfg.block_n, cfg.split_k)
        _small_kernel[grid](a, wp, part, counts, N, K, self.C, stride, 0, hi, W=self.W, WP=_wp(self.W),
                            K_PER_SPLIT=K // cfg.split_k, BLOCK_M=self.bm, BLOCK_N=cfg.block_n,
                            BLOCK_K=cfg.block_k, GATED=gated, DIRECT=direct, SWAP=cfg.swap, GATHER=gather,
                            SCATTER=scatter, num_warps=cfg.num_warps, num_stages=cfg.num_stages)
        if direct:
            return
        if gated:
            _act_kernel[(hi, triton.cdiv(N, 1024))](part, out, counts, N, stride, 0, hi, W=self.W, WP=_wp(self.W),
                                                    SPLITS=cfg.split_k, BLOCK=1024, num_warps=4)
        else:
            _reduce_kernel[(hi, triton.cdiv(N, 1024))](part, out, counts, N, self.C, stride, 0, hi, W=self.W,
                                                       WP=_wp(self.W), SPLITS=cfg.split_k, BLOCK=1024, num_warps=4)

    def _large(self, a, w, out, counts, N, K, cfg: LargeConfig, gated: bool, gather: bool, scatter: bool):
        grid = (triton.cdiv(self.cap, cfg.block_m) * (N // cfg.block_n),)
        _large_kernel[grid](a, w, out, counts, N, self.C, int(w.shape[1]), self.small_max, K=K, W=self.W,
                            WP=_wp(self.W), BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k,
                            GROUP_M=cfg.group_m, GATED=gated, GATHER=gather, SCATTER=scatter,
                            num_warps=cfg.num_warps, num_stages=cfg.num_stages)

    def __call__(self, x, counts, out=None):
        """y [W C, H] for x [W C, H] and counts int32 [W] on the device, into `out` (default: a static buffer,
        so give each micro-batch in flight its own)."""
        assert x.shape == (self.cap, self.H) and x.is_contiguous() and counts.dtype == torch.int32
        y = self.y if out is None else out
        if self.small is not None:
            self._small(x, self.wp_in, self.act, counts, self.EH, self.H, self.small[0], True, True, False)
        if self.cap > self.small_max:
            self._large(x, self.w_in, self.act, counts, self.EH, self.H, self.large_up, True, True, False)
        if self.small is not None:
            self._small(self.act, self.wp_out, y, counts, self.H, self.EH, self.small[1], False, False, True)
        if self.cap > self.small_max:
            self._large(self.act, self.w_out, y, counts, self.H, self.EH, self.large_down, False, False, True)
        return y


SMALL_DEFAULT = (GemmConfig(64, 64, 4, 4, 4), GemmConfig(64, 128, 1, 4, 4, swap=True))  # 128-token winners, H200
LARGE_UP = (LargeConfig(), LargeConfig(block_n=64, num_warps=4, num_stages=4), LargeConfig(64, 32, 32, 4, 4, 2),
            LargeConfig(16, 16, 16, 2, 4, 2))
LARGE_DOWN = (LargeConfig(block_n=256), LargeConfig(num_warps=4, num_stages=4), LargeConfig(64, 32, 32, 4, 4, 2),
              LargeConfig(16, 16, 16, 2, 4, 2))


def build_counted(expert, segments: int, rows_per_segment: int,
                  small: tuple[GemmConfig, GemmConfig] | None = None) -> CountedSwiGLU | None:
    """The counted expert with the first configs that divide the expert's dims (None: none do, or no Triton),
    checked against float64 on random counts (None when it differs by more than 1e-2)."""
    if triton is None or expert.activation != "swiglu" or not expert.w_in.is_cuda:
        return None
    H, EH = int(expert.w_in.shape[0]), expert.expert_hidden
    ups = [c for c in LARGE_UP if EH % c.block_n == 0 and H % c.block_k == 0]
    downs = [c for c in LARGE_DOWN if H % c.block_n == 0 and EH % c.block_k == 0]
    if not ups or not downs:
        return None
    for sm in (small or SMALL_DEFAULT, None):
        try:
            fn = CountedSwiGLU(expert.w_in, expert.w_out, segments=segments, rows_per_segment=rows_per_segment,
                               small=sm, large_up=ups[0], large_down=downs[0])
        except ValueError:
            continue
        if counted_error(fn, expert) <= 1e-2:
            return fn
    return None


def counted_error(fn: CountedSwiGLU, expert, seed: int = 0) -> float:
    """Worst relative difference from float64 over three count vectors (one in each regime, one at capacity)."""
    from moeplace.runtime.experts import expert_forward

    g = torch.Generator(device="cpu").manual_seed(seed)
    W, C = fn.W, fn.C
    worst = 0.0
    for total in (min(fn.small_max, fn.cap) or 1, (fn.cap + fn.small_max) // 2 + 1, fn.cap):
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
