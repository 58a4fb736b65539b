"""Device-side routing and combine for the fused expert-parallel step (Triton, with torch fallbacks).

    route    dest [N] (rank of each (token, choice) entry, N = tokens x k, row-major), gates [N]
             -> pos [N]      slot index d x C + s in the [W x C] buffers (0 for a dropped entry)
                geff [N]     gate, 0 for an entry beyond capacity C (dropped)
                gidx [W x C] token row feeding each slot (unfilled slots keep a stale, valid row)
                count [W]    entries per destination (> C means overflow)
    combine  out [T, H] = x + sum_j geff[t, j] * y[pos[t, j]]    (fp32 sum, one pass over y)

One routing kernel replaces the one-hot / cumsum / scatter chain a plain implementation launches, and one
combine kernel replaces gather + multiply + sum + add: at 128 tokens per GPU every launch counts.
"""

from __future__ import annotations

from moeplace.runtime.deps import import_torch

torch = import_torch()

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover
    triton = None


if triton is not None:

    @triton.jit
    def _route_kernel(dest_ptr, gate_ptr, pos_ptr, geff_ptr, gidx_ptr, count_ptr, C, N: tl.constexpr,
                      K: tl.constexpr, BLOCK: tl.constexpr):
        d = tl.program_id(0)
        running = tl.zeros((), dtype=tl.int32)
        for start in range(0, N, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            inb = offs < N
            dd = tl.load(dest_ptr + offs, mask=inb, other=-1)
            hit = (dd == d) & inb
            slot = running + tl.cumsum(hit.to(tl.int32), 0) - 1
            ok = hit & (slot < C)
            g = tl.load(gate_ptr + offs, mask=inb, other=0.0)
            tl.store(pos_ptr + offs, tl.where(ok, d * C + slot, 0).to(tl.int64), mask=hit)
            tl.store(geff_ptr + offs, tl.where(ok, g, 0.0), mask=hit)
            tl.store(gidx_ptr + d * C + slot, (offs // K).to(tl.int64), mask=ok)
            running += tl.sum(hit.to(tl.int32), 0)
        tl.store(count_ptr + d, running)

    @triton.jit
    def _combine_kernel(x_ptr, y_ptr, pos_ptr, geff_ptr, out_ptr, H, K: tl.constexpr, BLOCK_H: tl.constexpr):
        t = tl.program_id(0)
        offs = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
        m = offs < H
        acc = tl.load(x_ptr + t * H + offs, mask=m, other=0.0).to(tl.float32)
        for j in tl.static_range(K):
            p = tl.load(pos_ptr + t * K + j)
            g = tl.load(geff_ptr + t * K + j)
            acc += g * tl.load(y_ptr + p * H + offs, mask=m, other=0.0).to(tl.float32)
        tl.store(out_ptr + t * H + offs, acc.to(out_ptr.dtype.element_ty), mask=m)


def use_triton(device) -> bool:
    return triton is not None and device.type == "cuda"


def route(dest, gates, C: int, W: int, k: int, pos, geff, gidx, count) -> None:
    """Fill pos/geff [N], gidx [W*C], count [W] in place (see the module docstring)."""
    N = int(dest.numel())
    if use_triton(dest.device):
        _route_kernel[(W,)](dest, gates, pos, geff, gidx, count, C, N=N, K=k, BLOCK=1024, num_warps=4)
        return
    onehot = torch.nn.functional.one_hot(dest, W)
    slot = onehot.cumsum(0).gather(1, dest[:, None]).squeeze(1) - 1
    ok = slot < C
    pos.copy_(torch.where(ok, dest * C + slot, 0))
    geff.copy_(torch.where(ok, gates, torch.zeros_like(gates)))
    tok = torch.arange(N, device=dest.device) // k
    gidx.index_copy_(0, (dest * C + slot)[ok], tok[ok])
    count.copy_(onehot.sum(0).to(count.dtype))


def combine(x, y, pos, geff, k: int, out) -> None:
    """out [T, H] = x + sum_j geff * y[pos] in place."""
    T, H = x.shape
    if use_triton(x.device):
        _combine_kernel[(T, triton.cdiv(H, 1024))](x, y, pos, geff, out, H, K=k, BLOCK_H=1024, num_warps=4)
        return
    g = y.index_select(0, pos).view(T, k, H).float() * geff.view(T, k, 1)
    out.copy_((x.float() + g.sum(1)).to(out.dtype))
