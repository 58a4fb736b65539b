"""A Triton SwiGLU expert for few tokens, where cuBLAS leaves the weight read short of HBM bandwidth.

With M <= 128 tokens the expert is bound by reading its weights (88 MB in the seed). cuBLAS tiles the
[M, 4096] and [M, 7168] outputs into a few dozen tiles, too few to keep 132 SMs streaming, and reads the
weights at about half of HBM bandwidth. The kernels here give every SM a narrow slice of output columns
(16-64 wide) over the whole K, or over a K-slice (split-K), so that a few hundred programs each stream
their own contiguous rows of the weights:

    up    gate, up [M, EH] = x @ w_in[:, :EH], x @ w_in[:, EH:]   (one program: both halves of one n-slice)
          split 1: act = silu(gate) * up written directly in bf16
          split S: fp32 partials [S, M, 2 EH]; `act` sums them and applies silu(gate) * up
    down  y [M, H] = act @ w_out
          split 1: y written directly in bf16; split S: fp32 partials [S, M, H], summed by `reduce`

The weights are kept packed in tiles of BLOCK_N x BLOCK_K elements, each tile contiguous (K fastest) and
the tiles in the order a program reads them, so that every load streams one contiguous block (rows of a
plain [N, K] layout sit 14 KB apart and each load would touch BLOCK_N DRAM pages for 256 bytes each).
No atomics: partial sums go to their own slot and are added in a fixed order, so results are
deterministic. Programs are ordered M-tile fastest, so that M tiles sharing a weight tile run together and
the second read of it hits L2.
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
try:
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:  # pragma: no cover - older Triton, CPU installs
    TensorDescriptor = None


@dataclass(frozen=True)
class GemmConfig:
    """Tiling of one of the expert's two GEMMs: output columns per program, K step, K splits."""

    block_n: int
    block_k: int
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 4
    tma: bool = False
    swap: bool = False  # weights as the MMA's A operand (Hopper's wgmma needs 64 rows there), tokens as B

    @property
    def label(self) -> str:
        tag = ("t" if self.tma else "") + ("x" if self.swap else "")
        return f"{tag}n{self.block_n}k{self.block_k}s{self.split_k}w{self.num_warps}p{self.num_stages}"


if triton is not None:

    @triton.jit
    def _gemm_kernel(a_ptr, wp_ptr, out_ptr, M, N, K, stride_s,
                     K_PER_SPLIT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                     BLOCK_K: tl.constexpr, GATED: tl.constexpr, DIRECT: tl.constexpr, SWAP: tl.constexpr):
        """out = a [M, K] @ W [K, N] (and @ W_up when GATED) over one K-slice per program.

        The weights are packed in tiles (`pack`): tile (n, k) is BLOCK_N x BLOCK_K contiguous elements
        (gate tile then up tile when GATED), so every load streams one contiguous block.
        DIRECT: out [M, N] in out's dtype (silu(gate) * up when GATED); else fp32 partials at
        out + pid_k * stride_s, [M, N] (or [M, 2N]: gate | up when GATED)."""
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        pid_k = tl.program_id(2)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        m_ok = offs_m[:, None] < M
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
                a = tl.load(a_ptr + offs_m[:, None] * K + offs_k[None, :], mask=m_ok, other=0.0)
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
                a = tl.load(a_ptr + offs_m[:, None] * K + offs_k[None, :], mask=m_ok, other=0.0)
                w = tl.load(tiles + i * G * TILE + offs_tile)
                acc += tl.dot(a, tl.trans(w))
                if GATED:
                    wu = tl.load(tiles + i * G * TILE + TILE + offs_tile)
                    acc_u += tl.dot(a, tl.trans(wu))
        if DIRECT:
            if GATED:
                acc = acc * tl.sigmoid(acc) * acc_u
            tl.store(out_ptr + offs_m[:, None] * N + offs_n[None, :], acc.to(out_ptr.dtype.element_ty), mask=m_ok)
        else:
            base = out_ptr + pid_k * stride_s
            if GATED:
                tl.store(base + offs_m[:, None] * (2 * N) + offs_n[None, :], acc, mask=m_ok)
                tl.store(base + offs_m[:, None] * (2 * N) + N + offs_n[None, :], acc_u, mask=m_ok)
            else:
                tl.store(base + offs_m[:, None] * N + offs_n[None, :], acc, mask=m_ok)

    @triton.jit
    def _gemm_tma_kernel(a_ptr, w_desc, out_ptr, M, N, K, stride_s,
                         K_PER_SPLIT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                         BLOCK_K: tl.constexpr, GATED: tl.constexpr, DIRECT: tl.constexpr):
        """As `_gemm_kernel`, with the weights [N (x 2), K] read by the Hopper tensor-memory accelerator
        (bulk asynchronous copies of BLOCK_N x BLOCK_K boxes through a host-built descriptor). A separate
        kernel on purpose: one kernel with constexpr TMA and SWAP switches measured 8-15% slower on H200."""
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        pid_k = tl.program_id(2)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        m_ok = offs_m[:, None] < M
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        acc_u = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        k0 = pid_k * K_PER_SPLIT
        for i in range(0, K_PER_SPLIT // BLOCK_K):
            k = k0 + i * BLOCK_K
            offs_k = k + tl.arange(0, BLOCK_K)
            a = tl.load(a_ptr + offs_m[:, None] * K + offs_k[None, :], mask=m_ok, other=0.0)
            w = w_desc.load([pid_n * BLOCK_N, k])
            acc += tl.dot(a, tl.trans(w))
            if GATED:
                wu = w_desc.load([N + pid_n * BLOCK_N, k])
                acc_u += tl.dot(a, tl.trans(wu))
        if DIRECT:
            if GATED:
                acc = acc * tl.sigmoid(acc) * acc_u
            tl.store(out_ptr + offs_m[:, None] * N + offs_n[None, :], acc.to(out_ptr.dtype.element_ty), mask=m_ok)
        else:
            base = out_ptr + pid_k * stride_s
            if GATED:
                tl.store(base + offs_m[:, None] * (2 * N) + offs_n[None, :], acc, mask=m_ok)
                tl.store(base + offs_m[:, None] * (2 * N) + N + offs_n[None, :], acc_u, mask=m_ok)
            else:
                tl.store(base + offs_m[:, None] * N + offs_n[None, :], acc, mask=m_ok)

    @triton.jit
    def _act_kernel(part_ptr, act_ptr, EH, stride_s, SPLITS: tl.constexpr, BLOCK: tl.constexpr):
        """act [M, EH] = silu(sum_s gate_s) * sum_s up_s, from partials [S, M, 2 EH], in act's dtype."""
        m = tl.program_id(0)
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
    def _reduce_kernel(part_ptr, y_ptr, MN, stride_s, SPLITS: tl.constexpr, BLOCK: tl.constexpr):
        """y [M * N] = sum_s partials[s] in y's dtype."""
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < MN
        v = tl.zeros((BLOCK,), dtype=tl.float32)
        for s in tl.static_range(SPLITS):
            v += tl.load(part_ptr + s * stride_s + offs, mask=mask, other=0.0)
        tl.store(y_ptr + offs, v.to(y_ptr.dtype.element_ty), mask=mask)


def available() -> bool:
    return triton is not None and torch.cuda.is_available()


def block_m_for(tokens: int) -> int:
    """One M tile up to 128 tokens (every weight byte read once), 128-row tiles above (L2 serves the rest)."""
    return max(16, min(128, 1 << (max(tokens, 1) - 1).bit_length()))


def pack(w_KN, cfg: GemmConfig, gated: bool):
    """W [K, N] (gated: [K, 2N], gate | up) -> tiles [N / bn, K / bk, (2,) bn, bk], each tile contiguous
    with K fastest: the order in which one program of `_gemm_kernel` streams them."""
    K, cols = int(w_KN.shape[0]), int(w_KN.shape[1])
    bn, bk = cfg.block_n, cfg.block_k
    if gated:
        N = cols // 2
        t = w_KN.reshape(K // bk, bk, 2, N // bn, bn).permute(3, 0, 2, 4, 1)
    else:
        t = w_KN.reshape(K // bk, bk, cols // bn, bn).permute(2, 0, 3, 1)
    return t.contiguous()


SMEM_LIMIT_BYTES = 232_448  # per block on H100 and H200 (227 KB opt-in)


def smem_bytes(cfg: GemmConfig, block_m: int, gated: bool) -> int:
    """Shared memory the pipelined loop holds: num_stages x (an A tile + one or two weight tiles), bf16."""
    return cfg.num_stages * (block_m + (2 if gated else 1) * cfg.block_n) * cfg.block_k * 2


def _check(K: int, N: int, cfg: GemmConfig, max_tokens: int, gated: bool) -> None:
    if K % (cfg.block_k * cfg.split_k) or N % cfg.block_n:
        raise ValueError(f"GEMM config {cfg.label} does not divide K={K}, N={N}")
    need = smem_bytes(cfg, block_m_for(max_tokens), gated)
    if need > SMEM_LIMIT_BYTES:
        raise ValueError(f"GEMM config {cfg.label} needs {need} B of shared memory at {max_tokens} tokens")


class SmallBatchSwiGLU:
    """y [M, H] = SwiGLU expert(x [M, H]) for M <= max_tokens, with static buffers (CUDA-graph safe).

    w_in [H, 2 EH] (gate | up) and w_out [EH, H] as in `Expert`; tile-packed copies are kept (2 x the
    expert's weight memory: 176 MB for the seed, on a GPU that holds one expert)."""

    def __init__(self, w_in, w_out, max_tokens: int, up: GemmConfig, down: GemmConfig) -> None:
        self.H, self.EH = int(w_out.shape[1]), int(w_out.shape[0])
        _check(self.H, self.EH, up, max_tokens, gated=True)
        _check(self.EH, self.H, down, max_tokens, gated=False)
        self.up_cfg, self.down_cfg = up, down
        self.wp_in = self._weights(w_in, up, gated=True)
        self.wp_out = self._weights(w_out, down, gated=False)
        dev, dt = w_in.device, w_in.dtype
        self.max_tokens = max_tokens
        self.act = torch.empty(max_tokens, self.EH, device=dev, dtype=dt)
        self.y = torch.empty(max_tokens, self.H, device=dev, dtype=dt)
        self.part_up = (torch.empty(up.split_k, max_tokens, 2 * self.EH, device=dev, dtype=torch.float32)
                        if up.split_k > 1 else None)
        self.part_down = (torch.empty(down.split_k, max_tokens, self.H, device=dev, dtype=torch.float32)
                          if down.split_k > 1 else None)

    @staticmethod
    def _weights(w_KN, c: GemmConfig, gated: bool):
        """Tile-packed weights, or [N (x 2), K] with a TMA descriptor of BLOCK_N x BLOCK_K boxes."""
        if not c.tma:
            return pack(w_KN, c, gated)
        if TensorDescriptor is None:
            raise ValueError("this Triton has no tensor descriptors (TMA)")
        wt = w_KN.t().contiguous()
        return (wt, TensorDescriptor.from_tensor(wt, block_shape=[c.block_n, c.block_k]))

    def _launch(self, a, wp, out, M: int, N: int, K: int, c: GemmConfig, gated: bool, stride_s: int) -> None:
        bm = block_m_for(M)
        grid = (triton.cdiv(M, bm), N // c.block_n, c.split_k)
        extra = {} if c.tma else {"SWAP": c.swap}
        kernel = _gemm_kernel
        if c.tma:
            kernel, wp = _gemm_tma_kernel, wp[1]
        kernel[grid](a, wp, out, M, N, K, stride_s, K_PER_SPLIT=K // c.split_k, BLOCK_M=bm,
                     BLOCK_N=c.block_n, BLOCK_K=c.block_k, GATED=gated, DIRECT=c.split_k == 1,
                     num_warps=c.num_warps, num_stages=c.num_stages, **extra)

    def up(self, x):
        """act [M, EH] = silu(x @ gate) * (x @ up)."""
        M = int(x.shape[0])
        assert M <= self.max_tokens and x.is_contiguous()
        c = self.up_cfg
        if c.split_k == 1:
            self._launch(x, self.wp_in, self.act, M, self.EH, self.H, c, True, 0)
        else:
            stride = self.max_tokens * 2 * self.EH
            self._launch(x, self.wp_in, self.part_up, M, self.EH, self.H, c, True, stride)
            _act_kernel[(M, triton.cdiv(self.EH, 1024))](self.part_up, self.act, self.EH, stride,
                                                         SPLITS=c.split_k, BLOCK=1024, num_warps=4)
        return self.act[:M]

    def down(self, act):
        """y [M, H] = act @ w_out."""
        M = int(act.shape[0])
        c = self.down_cfg
        if c.split_k == 1:
            self._launch(act, self.wp_out, self.y, M, self.H, self.EH, c, False, 0)
        else:
            stride = self.max_tokens * self.H
            self._launch(act, self.wp_out, self.part_down, M, self.H, self.EH, c, False, stride)
            _reduce_kernel[(triton.cdiv(M * self.H, 4096),)](self.part_down, self.y, M * self.H, stride,
                                                             SPLITS=c.split_k, BLOCK=4096, num_warps=4)
        return self.y[:M]

    def __call__(self, x):
        return self.down(self.up(x))


def _configs(N: int, K: int, splits, widths, steps) -> list[GemmConfig]:
    """Tilings with enough programs to fill an H100/H200 (>= 96; small programs let many sit on one SM and
    keep more loads in flight) and not so many that the partial sums cost more than they hide; the swapped
    form (weights as the MMA's A operand) where the tile has the 64+ weight rows wgmma wants."""
    out = []
    for s in splits:
        for bn in widths:
            for bk in steps:
                if N % bn or K % (bk * s) or not 96 <= N // bn * s <= 2048:
                    continue
                out += [GemmConfig(bn, bk, s, 4, st, tma) for st in (3, 4) for tma in (False, True) if bn <= 64]
                if bn >= 64:
                    out += [GemmConfig(bn, bk, s, 4, st, swap=True) for st in (3, 4)]
    return out


def up_configs(hidden: int = 7168, expert_hidden: int = 2048) -> list[GemmConfig]:
    """Candidates for the gated up GEMM (N = EH output columns, two weight rows per column, K = H)."""
    return _configs(expert_hidden, hidden, (2, 4, 8), (32, 64, 128), (64, 128, 256))


def down_configs(hidden: int = 7168, expert_hidden: int = 2048) -> list[GemmConfig]:
    """Candidates for the down GEMM (N = H output columns, K = EH)."""
    return _configs(hidden, expert_hidden, (1, 2), (64, 128), (64, 128))
