"""The fused step's transports behind one interface: the registry, and on CPU tensors the rows each one puts
where (the symmetric-memory stores write into every peer's buffer what NCCL's pack lays out for that peer)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from moeplace.runtime.transports import (  # noqa: E402
    TRANSPORTS,
    Nccl,
    SymmCopyEngine,
    SymmStores,
    Transport,
    make_transport,
)


def test_the_registry_names_the_three_transports_the_worker_offers():
    from moeplace.runtime.worker import parse_args

    assert set(TRANSPORTS) == {"nccl", "symm", "symm-ce"}
    assert all(issubclass(t, Transport) and TRANSPORTS[t.name] is t for t in (Nccl, SymmStores, SymmCopyEngine))
    assert isinstance(make_transport("symm-ce"), SymmCopyEngine)
    for name in TRANSPORTS:
        assert parse_args(["--manifest", "m", "--out", "o", "--transport", name]).transport == name
    with pytest.raises(ValueError, match="unknown transport 'gloo' \\(nccl, symm or symm-ce\\)"):
        make_transport("gloo")


def _step(rank: int, W: int = 3, C: int = 2, H: int = 4, counted: bool = True):
    gen = torch.Generator().manual_seed(rank)
    return SimpleNamespace(rank=rank, world=W, C=C, H=H, M=1, counted=counted,
                           gidx=[torch.randint(0, 5, (W * C,), generator=gen)],
                           scount=[torch.tensor([2, 1, 0][:W], dtype=torch.int32) + rank],
                           send=[torch.zeros(W * C, H)],
                           rows=[torch.arange(p * C, (p + 1) * C) for p in range(W)])


def test_sm_stores_write_each_peer_the_rows_nccl_packs_for_it():
    W, C, H = 3, 2, 4
    x = torch.arange(5 * H, dtype=torch.float32).reshape(5, H)
    recv = [torch.zeros(W * C, H) for _ in range(W)]          # peer p's receive buffer
    back = [torch.zeros(W * C, H) for _ in range(W)]
    cnt = [torch.zeros(W, dtype=torch.int32) for _ in range(W)]
    for r in range(W):
        step = _step(r, W, C, H)
        Nccl().pack(step, 0, x)                                # the layout NCCL's all-to-all sends
        symm = SymmStores()
        symm.peer_recv, symm.peer_back, symm.peer_cnt = [recv], [back], [cnt]
        symm.pack(step, 0, x)
        y = torch.randn(W * C, H)
        symm.put_back(step, 0, y)
        for p in range(W):
            assert torch.equal(recv[p][r * C:(r + 1) * C], step.send[0][p * C:(p + 1) * C])
            assert torch.equal(back[p][r * C:(r + 1) * C], y[p * C:(p + 1) * C])
            assert int(cnt[p][r]) == int(step.scount[0][p])

