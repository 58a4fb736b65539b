"""A Triton SwiGLU expert for few tokens, where cuBLAS leaves the weight read short of HBM bandwidth.

With M <= 256 tokens the expert is bound by reading its weights (88 MB in the seed). cuBLAS tiles
[M, 4096] and [M, 7168] outputs into a few dozen tiles, too few to keep 132 SMs streaming, so the
kernels here split K as well (split-K) and accumulate partial products in fp32 with relaxed atomic adds
(no fences: nothing reads them until the kernel ends). One M tile covers up to 128 tokens, so every
weight byte is read once:

    up    acc_up [M, 2 EH] += x[:, k-slice] @ w_in[k-slice, n-tile]          (grid: n-tiles x K-splits)
    act   a = silu(gate) * up in bf16 [M, EH]; zeroes acc_up for the next call
    down  acc_out [M, H]   += a[:, k-slice] @ w_out[k-slice, n-tile]
    cast  y = acc_out in bf16; zeroes acc_out for the next call

Four launches inside the expert's CUDA graph; the accumulators are zeroed once at construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from moeplace.runtime.deps import import_torch

torch = import_torch()

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - CPU installs
    triton = None


@dataclass(frozen=True)
class SplitConfig:
    block_m: int
    block_n: int
    block_k: int
    split_k: int
    num_warps: int = 4
    num_stages: int = 3


if triton is not None:

    @triton.jit
    def _splitk_kernel(a_ptr, w_ptr, acc_ptr, M, N, K, K_PER_SPLIT: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        """acc [M, N] += a [M, K] @ w [K, N] over one K-slice per program (bf16 in, fp32 atomics out)."""
        pid_n = tl.program_id(0)
        pid_k = tl.program_id(1)
        pid_m = tl.program_id(2)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        k0 = pid_k * K_PER_SPLIT
        for i in range(0, K_PER_SPLIT, BLOCK_K):
            offs_k = k0 + i + tl.arange(0, BLOCK_K)
            a = tl.load(a_ptr + offs_m[:, None] * K + offs_k[None, :], mask=offs_m[:, None] < M, other=0.0)
            b = tl.load(w_ptr + offs_k[:, None] * N + offs_n[None, :])
            acc += tl.dot(a, b)
        tl.atomic_add(acc_ptr + offs_m[:, None] * N + offs_n[None, :], acc, mask=offs_m[:, None] < M, sem="relaxed")

    @triton.jit
    def _act_kernel(up_ptr, act_ptr, EH, BLOCK: tl.constexpr):
        """act [M, EH] = silu(up[:, :EH]) * up[:, EH:] in the weights' dtype; zeroes up."""
        m = tl.program_id(0)
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < EH
        row = up_ptr + m * 2 * EH
        g = tl.load(row + offs, mask=mask, other=0.0)
        u = tl.load(row + EH + offs, mask=mask, other=0.0)
        tl.store(act_ptr + m * EH + offs, (g * tl.sigmoid(g) * u).to(act_ptr.dtype.element_ty), mask=mask)
        tl.store(row + offs, tl.zeros_like(g), mask=mask)
        tl.store(row + EH + offs, tl.zeros_like(u), mask=mask)

    @triton.jit
    def _cast_kernel(acc_ptr, y_ptr, N, BLOCK: tl.constexpr):
        """y = acc in y's dtype; zeroes acc."""
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        v = tl.load(acc_ptr + offs, mask=mask, other=0.0)
        tl.store(y_ptr + offs, v.to(y_ptr.dtype.element_ty), mask=mask)
        tl.store(acc_ptr + offs, tl.zeros_like(v), mask=mask)


def available() -> bool:
    return triton is not None and torch.cuda.is_available()


def _check(K: int, N: int, cfg: SplitConfig) -> None:
    if K % (cfg.block_k * cfg.split_k) or N % cfg.block_n:
        raise ValueError(f"split config {cfg} does not divide K={K}, N={N}")


class SplitKSwiGLU:
    """y [M, H] = SwiGLU expert(x [M, H]) for M <= max_tokens, with static fp32 accumulators."""

    def __init__(self, w_in, w_out, max_tokens: int, up: SplitConfig, down: SplitConfig) -> None:
        self.w_in, self.w_out = w_in, w_out
        self.H, self.EH = int(w_out.shape[1]), int(w_out.shape[0])
        _check(self.H, 2 * self.EH, up)
        _check(self.EH, self.H, down)
        self.up, self.down = up, down
        dev = w_in.device
        self.acc_up = torch.zeros(max_tokens, 2 * self.EH, device=dev, dtype=torch.float32)
        self.act = torch.zeros(max_tokens, self.EH, device=dev, dtype=w_in.dtype)
        self.acc_out = torch.zeros(max_tokens, self.H, device=dev, dtype=torch.float32)
        self.y = torch.zeros(max_tokens, self.H, device=dev, dtype=w_in.dtype)

    def _gemm(self, a, w, acc, M: int, N: int, K: int, c: SplitConfig) -> None:
        grid = (N // c.block_n, c.split_k, triton.cdiv(M, c.block_m))
        _splitk_kernel[grid](a, w, acc, M, N, K, K // c.split_k, BLOCK_M=c.block_m, BLOCK_N=c.block_n,
                             BLOCK_K=c.block_k, num_warps=c.num_warps, num_stages=c.num_stages)

    def __call__(self, x):
        M = int(x.shape[0])
        H, EH = self.H, self.EH
        self._gemm(x, self.w_in, self.acc_up, M, 2 * EH, H, self.up)
        _act_kernel[(M, triton.cdiv(EH, 1024))](self.acc_up, self.act, EH, BLOCK=1024, num_warps=4)
        self._gemm(self.act, self.w_out, self.acc_out, M, H, EH, self.down)
        _cast_kernel[(triton.cdiv(M * H, 4096),)](self.acc_out, self.y, M * H, BLOCK=4096, num_warps=4)
        return self.y[:M]


def candidate_configs(M: int) -> list[tuple[SplitConfig, SplitConfig]]:
    """A small search space for tuning at M tokens: one M tile up to 128 tokens (each weight byte read once),
    N tiles of 64 or 128, enough K-splits for a few hundred programs, 3-4 pipeline stages."""
    bm = max(16, min(128, 1 << (max(M, 1) - 1).bit_length()))
    return [(SplitConfig(bm, bn, bk, s, 4, st), SplitConfig(bm, dbn, dbk, ds, 4, dst))
            for bn, bk, s, st, dbn, dbk, ds, dst in (
                (64, 128, 4, 4, 64, 128, 2, 4), (128, 128, 4, 3, 128, 128, 2, 3), (64, 256, 2, 3, 64, 128, 4, 4),
                (128, 64, 8, 4, 64, 64, 4, 4), (64, 128, 8, 4, 128, 64, 4, 4))]
