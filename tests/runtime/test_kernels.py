"""The small-batch Triton expert: weight packing (CPU) and every tuned config against float64 (GPU)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from moeplace.runtime import kernels  # noqa: E402
from moeplace.runtime.kernels import GemmConfig, pack  # noqa: E402


def _tile(packed, pid_n: int, kt: int, KT: int, c: GemmConfig, g: int, G: int):
    tile = c.block_n * c.block_k
    base = ((pid_n * KT + kt) * G + g) * tile
    return packed.reshape(-1)[base:base + tile].reshape(c.block_n, c.block_k)


@pytest.mark.parametrize("gated", [True, False])
def test_pack_puts_each_programs_tiles_contiguous_in_read_order(gated):
    K, N, c = 256, 64, GemmConfig(16, 64, 2)
    w = torch.arange(K * N * (2 if gated else 1), dtype=torch.float32).reshape(K, -1)
    packed = pack(w, c, gated)
    G, KT = (2 if gated else 1), K // c.block_k
    assert packed.numel() == w.numel()
    for pid_n in range(N // c.block_n):
        cols = slice(pid_n * c.block_n, (pid_n + 1) * c.block_n)
        for kt in range(KT):
            rows = slice(kt * c.block_k, (kt + 1) * c.block_k)
            assert torch.equal(_tile(packed, pid_n, kt, KT, c, 0, G), w[rows, cols].T)
            if gated:
                up = slice(N + cols.start, N + cols.stop)
                assert torch.equal(_tile(packed, pid_n, kt, KT, c, 1, G), w[rows, up].T)


def test_configs_that_overflow_shared_memory_are_refused_before_launch():
    w_in, w_out = torch.zeros(7168, 4096), torch.zeros(2048, 7168)
    big = GemmConfig(32, 256, 2, 4, 3)  # 3 x (128 + 64) x 256 x 2 B = 294,912 B at 128 tokens
    assert kernels.smem_bytes(big, 128, gated=True) == 294_912
    with pytest.raises(ValueError, match="shared memory"):
        kernels.SmallBatchSwiGLU(w_in, w_out, 128, big, GemmConfig(64, 128, 1, 4, 3))


def test_configs_divide_the_seed_dims_and_fill_the_gpu():
    for configs, N, K in ((kernels.up_configs(7168, 2048), 2048, 7168), (kernels.down_configs(7168, 2048), 7168, 2048)):
        assert configs
        for c in configs:
            assert N % c.block_n == 0 and K % (c.block_k * c.split_k) == 0
            assert 96 <= N // c.block_n * c.split_k <= 2048
    assert len({c.label for c in kernels.up_configs()}) == len(kernels.up_configs())
    assert kernels.up_configs(256, 128) == []  # too small to fill a GPU: cuBLAS only


@pytest.mark.gpu
@pytest.mark.skipif(not kernels.available(), reason="needs a CUDA GPU and Triton")
@pytest.mark.parametrize("tokens", [1, 16, 37, 128])
def test_every_config_matches_float64_at_seed_dims(tokens):
    from moeplace.runtime.experts import expert_forward

    dev = torch.device("cuda", 0)
    gen = torch.Generator(device="cpu").manual_seed(tokens)
    w_in = (torch.randn(7168, 4096, generator=gen) / 7168 ** 0.5).to(dev, torch.bfloat16)
    w_out = (torch.randn(2048, 7168, generator=gen) / 2048 ** 0.5).to(dev, torch.bfloat16)
    x = torch.randn(tokens, 7168, generator=gen).to(dev, torch.bfloat16)
    ref = expert_forward(x.double(), w_in.double(), w_out.double(), "swiglu")
    ups, downs = kernels.up_configs(), kernels.down_configs()
    pairs = [(u, downs[i % len(downs)]) for i, u in enumerate(ups)] + [(ups[0], d) for d in downs]
    ran = 0
    for up, down in pairs:
        try:
            fn = kernels.SmallBatchSwiGLU(w_in, w_out, max(tokens, 16), up, down)
        except ValueError:  # needs more shared memory than the card has at this many tokens
            continue
        ran += 1
        y = fn(x).clone()
        assert y.shape == (tokens, 7168) and y.dtype == torch.bfloat16
        err = float(torch.linalg.vector_norm(y.double() - ref) / torch.linalg.vector_norm(ref))
        assert err <= 1e-2, (up.label, down.label, err)
        assert torch.equal(fn(x), y)  # deterministic: no atomics
    assert ran >= len(pairs) // 2
