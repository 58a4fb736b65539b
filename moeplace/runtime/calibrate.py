"""Measurements behind `moeplace calibrate`: GEMM and HBM ceilings, the expert curve, transfer curves.

    ceilings         bf16 8192^3 matrix product (TFLOP/s), device-to-device copy (TB/s, read + write)
    expert curve     one expert at the model's dims, tokens -> us, fastest of cuBLAS and the small-batch
                     Triton kernel, as a graph
    transfer curves  among `world` GPUs of this host, bytes per rank -> us (slowest rank, median):
                     nccl-a2a (all_to_all_single), symm (the fused step's exchange), p2p (send/recv pair)
    overlap          the fused step's expert on world x t rows and its exchange of t rows per peer, alone and
                     launched together on two streams (how much running at once slows them)

Multi-GPU curves run in spawned processes (one per GPU, NCCL); the results come back through a file.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path

from moeplace.placement.schema import ModelSpec
from moeplace.runtime.deps import import_torch
from moeplace.runtime.timing import graphed, median, time_collective, time_local

torch = import_torch()
dist = torch.distributed

EXPERT_TOKENS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
TRANSFER_TOKENS = (1, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
OVERLAP_TOKENS = (64, 128, 256, 512, 1024, 2048, 4096)


def ceilings(device=None) -> dict[str, float]:
    """Achievable bf16 GEMM rate and HBM bandwidth on this device, measured (not the datasheet)."""
    dev = device or torch.device("cuda", torch.cuda.current_device())
    n = 8192
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    t_mm = median(time_local(lambda: torch.mm(a, b), reps=10, warmup=3))
    del a, b
    src = torch.randn(1 << 29, device=dev, dtype=torch.bfloat16)  # 1 GiB
    dst = torch.empty_like(src)
    t_cp = median(time_local(lambda: dst.copy_(src), reps=10, warmup=3))
    nbytes = 2 * src.numel() * src.element_size()
    del src, dst
    torch.cuda.empty_cache()
    return {"bf16_tflops": round(2 * n ** 3 / (t_mm * 1e-6) / 1e12, 1), "hbm_tbps": round(nbytes / (t_cp * 1e-6) / 1e12, 3),
            "matmul_us": round(t_mm, 1), "copy_us": round(t_cp, 1)}


def expert_curve(model: ModelSpec, tokens=EXPERT_TOKENS, *, seed: int = 0, triton: bool = True) -> list[dict]:
    """[{tokens, us, impl, tried}] for one seeded expert of `model` in bf16 on the current device."""
    from moeplace.runtime.expertops import tune_expert
    from moeplace.runtime.experts import seeded_expert

    dev = torch.device("cuda", torch.cuda.current_device())
    ex = seeded_expert(model, 0, 0, seed=seed, dtype=torch.bfloat16, device=dev)
    out = []
    for n in tokens:
        c = tune_expert(ex, n, try_triton=triton)
        out.append({"tokens": n, "us": c.us, "impl": c.name, "tried": c.tried})
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_local_group(rank: int, world: int, port: int):
    """NCCL among the GPUs of this host, one process per GPU (for calibration and the benchmark)."""
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
    torch.cuda.set_device(rank)
    dev = torch.device("cuda", rank)
    store = dist.TCPStore("127.0.0.1", port, world, rank == 0)
    dist.init_process_group("nccl", store=store, rank=rank, world_size=world, device_id=dev)
    return dev


def transfer_measurements(rank: int, world: int, dev, hidden: int, tokens=TRANSFER_TOKENS, reps: int = 30,
                          model: ModelSpec | None = None) -> dict:
    """Inside an initialized NCCL group: the three transfer curves (every rank must call this together);
    with `model`, also the expert/exchange overlap (`overlap_measurements`, key "overlap")."""
    from moeplace.runtime.transports import ce_copies, symm_buffer

    tb = hidden * 2
    res: dict[str, list] = {"nccl-a2a": [], "symm": [], "p2p": []}
    top = max(tokens)
    send = torch.randn(world * top, hidden, device=dev, dtype=torch.bfloat16)
    recv = torch.empty_like(send)
    for t in tokens:
        s, r = send[:world * t], recv[:world * t]
        us = median(time_collective(graphed(lambda r=r, s=s: dist.all_to_all_single(r, s)), reps=reps))
        res["nccl-a2a"].append({"tokens_per_peer": t, "bytes_per_rank": world * t * tb, "us": round(us, 2)})
    try:
        buf, h = symm_buffer((world * top, hidden), torch.bfloat16, dev, dist.group.WORLD)
        peers = [h.get_buffer(p, (world * top, hidden), torch.bfloat16, 0) for p in range(world)]
        streams = [torch.cuda.Stream(dev) for _ in range(world)]
        for t in tokens:
            idx = [torch.arange(p * t, (p + 1) * t, device=dev) for p in range(world)]

            def ex(t=t, idx=idx):
                for p in range(world):
                    torch.index_select(send, 0, idx[p], out=peers[p][rank * t:(rank + 1) * t])
                h.barrier(channel=0)

            def ex_ce(t=t):
                ce_copies([(peers[p][rank * t:(rank + 1) * t], send[p * t:(p + 1) * t]) for p in range(world)],
                          streams, torch.cuda.current_stream())
                h.barrier(channel=0)
            us = median(time_collective(graphed(ex), reps=reps))
            res["symm"].append({"tokens_per_peer": t, "bytes_per_rank": world * t * tb, "us": round(us, 2)})
            us = median(time_collective(graphed(ex_ce), reps=reps))
            res.setdefault("symm-ce", []).append({"tokens_per_peer": t, "bytes_per_rank": world * t * tb,
                                                  "us": round(us, 2)})
    except Exception as exc:  # noqa: BLE001 - recorded: the profile then uses NCCL
        res["symm_error"] = str(exc).split("\n")[0][:200]
    if world >= 2:
        peer = rank ^ 1 if (rank ^ 1) < world else rank
        for t in tokens:
            a, b = send[:t], recv[:t]

            def pp(a=a, b=b):
                ops = [dist.P2POp(dist.isend, a, peer), dist.P2POp(dist.irecv, b, peer)]
                for w in dist.batch_isend_irecv(ops):
                    w.wait()
            try:
                us = median(time_collective(graphed(pp), reps=reps))
            except Exception:  # noqa: BLE001 - send/recv that will not capture is timed eagerly, and said so
                res["p2p_eager"] = True
                us = median(time_collective(pp, reps=reps))
            res["p2p"].append({"tokens": t, "bytes": t * tb, "us": round(us, 2)})
    del send, recv
    torch.cuda.empty_cache()
    if model is not None and world >= 2:
        res["overlap"] = overlap_measurements(rank, world, dev, model, reps=reps)
    return res


def overlap_measurements(rank: int, world: int, dev, model: ModelSpec, tokens=OVERLAP_TOKENS, *, reps: int = 30,
                         transports=("nccl", "symm-ce"), triton: bool = True) -> list[dict]:
    """The fused step's expert on world x t rows and its exchange of t rows per peer, each alone and both
    launched together (the exchange on a second stream, as `EpStep` overlaps one micro-batch's exchange with
    another's expert), each as a CUDA graph, slowest rank, median of `reps`, for the transports that overlap
    (nccl, symm-ce; symm stores from the compute stream and never overlaps; symm-ce is skipped where this
    build has no symmetric memory). Every rank must call this together."""
    from moeplace.runtime.transports import ce_copies, symm_buffer
    from moeplace.runtime.expertops import tune_expert
    from moeplace.runtime.experts import seeded_expert

    H, top, bf16 = model.hidden, world * max(tokens), torch.bfloat16
    ex = seeded_expert(model, 0, rank, seed=0, dtype=bf16, device=dev)
    send = torch.randn(top, H, device=dev, dtype=bf16)
    recv = torch.empty_like(send)
    xin = torch.randn(top, H, device=dev, dtype=bf16)
    side = torch.cuda.Stream(dev)
    peers, h, streams = None, None, [torch.cuda.Stream(dev) for _ in range(world)]
    if "symm-ce" in transports:
        try:
            _, h = symm_buffer((top, H), bf16, dev, dist.group.WORLD)
            peers = [h.get_buffer(p, (top, H), bf16, 0) for p in range(world)]
        except Exception:  # noqa: BLE001 - no symmetric memory: nccl only
            peers = None
    out = []
    for t in tokens:
        n = world * t
        fn = tune_expert(ex, n, try_triton=triton).fn
        for transport in transports:
            if transport == "symm-ce" and peers is None:
                continue

            def exchange(t=t, transport=transport):
                if transport == "nccl":
                    dist.all_to_all_single(recv[:world * t], send[:world * t])
                else:
                    ce_copies([(peers[p][rank * t:(rank + 1) * t], send[p * t:(p + 1) * t]) for p in range(world)],
                              streams, side)
                    h.barrier(channel=0)

            def run(with_expert: bool, with_exchange: bool, fn=fn, n=n, exchange=exchange):
                if not with_exchange:
                    fn(xin[:n])
                    return
                cs = torch.cuda.current_stream()
                side.wait_stream(cs)
                with torch.cuda.stream(side):
                    exchange()
                if with_expert:
                    fn(xin[:n])
                cs.wait_stream(side)

            us = [median(time_collective(graphed(lambda a=a, b=b: run(a, b)), reps=reps))
                  for a, b in ((True, False), (False, True), (True, True))]
            out.append({"tokens_per_peer": t, "bytes_per_rank": world * t * H * 2, "expert_rows": n,
                        "transport": transport, "expert_us": round(us[0], 2), "exchange_us": round(us[1], 2),
                        "both_us": round(us[2], 2)})
    return out


def _transfer_worker(rank: int, world: int, port: int, hidden: int, tokens: tuple[int, ...], path: str,
                     model: ModelSpec | None = None) -> None:
    dev = init_local_group(rank, world, port)
    res = transfer_measurements(rank, world, dev, hidden, tokens, model=model)
    if rank == 0:
        Path(path).write_text(json.dumps(res))
    dist.barrier()
    dist.destroy_process_group()


def transfer_curves(world: int, hidden: int, tokens=TRANSFER_TOKENS, model: ModelSpec | None = None) -> dict:
    """Spawn `world` processes (one per GPU) and measure the transfer curves (with `model`, the overlap
    too); returns their table."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "curves.json")
        mp.spawn(_transfer_worker, args=(world, free_port(), hidden, tuple(tokens), path, model), nprocs=world,
                 join=True)
        return json.loads(Path(path).read_text())
