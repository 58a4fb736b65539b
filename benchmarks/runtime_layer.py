"""Part B of the runtime benchmark: one MoE layer step on W GPUs, the plain implementation and the fused
step side by side, plus the transfer curves and the 1 -> W GPU scaling (one process per GPU, NCCL)."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

try:
    import torch
    import torch.distributed as dist
except ModuleNotFoundError:
    sys.exit("runtime_layer.py (part B of benchmarks/runtime_bench.py) needs PyTorch, which is not installed: pip install 'moeplace[runtime]' (torch >= 2.6; CUDA GPUs to run it)")

from moeplace.placement.schema import ModelSpec
from moeplace.runtime.calibrate import init_local_group, transfer_measurements
from moeplace.runtime.counted import tune_counted
from moeplace.runtime.epstep import EpStep
from moeplace.runtime.expertops import tune_expert
from moeplace.runtime.experts import expert_forward, seeded_expert
from moeplace.runtime.plain_ep import PlainFixed, plain_variable
from moeplace.runtime.timing import median, time_collective


def bench_model(world: int) -> ModelSpec:
    return ModelSpec(name=f"seed-expert-x{world}", num_layers=1, num_experts=max(2, world), top_k=2, hidden=7168,
                     expert_hidden=2048, num_heads=128, head_dim=128)


def _routing(Tg: int, W: int, k: int, seed: int, dev):
    g = torch.Generator().manual_seed(seed)
    topk = torch.stack([torch.randperm(W, generator=g)[:k] for _ in range(Tg)]) if W > k else \
        torch.stack([torch.randperm(W, generator=g) for _ in range(Tg)])[:, :k]
    logits = torch.sort(torch.randn(Tg, k, generator=g), dim=1, descending=True).values
    gates = torch.softmax(logits, dim=1)
    return topk.to(dev), gates.to(dev, torch.float32)


def capacity(Tm: int, W: int, k: int) -> int:
    """Rows per peer per micro-batch: all of them when every token reaches every rank (k = W); otherwise the
    binomial mean plus six standard deviations, rounded up to 16 (overflow is counted, never expected)."""
    p = min(1.0, k / W)
    if p >= 1.0:
        return Tm
    c = Tm * p + 6.0 * math.sqrt(Tm * p * (1 - p))
    return min(Tm, 16 * math.ceil(c / 16))


def _reference(x, topk, gates, experts64):
    """float64: x + sum_j g_j * expert_{topk_j}(x)."""
    x64 = x.double()
    out = x64.clone()
    for e, ex in enumerate(experts64):
        t, j = torch.nonzero(topk == e, as_tuple=True)
        if t.numel():
            out.index_add_(0, t, gates[t, j].double()[:, None] * expert_forward(x64[t], ex[0], ex[1], "swiglu"))
    return out


def _relerr(a, ref) -> float:
    return float(torch.linalg.vector_norm(a.double() - ref) / torch.linalg.vector_norm(ref))


def layer_worker(rank: int, world: int, port: int, cfg: dict, path: str) -> None:
    dev = init_local_group(rank, world, port)
    reps, sizes = cfg["reps"], cfg["sizes"]
    model = bench_model(world)
    k = model.top_k
    H = model.hidden
    ex = seeded_expert(model, 0, rank, seed=0, dtype=torch.bfloat16, device=dev)
    lut = torch.arange(world, device=dev)
    log = {"rank": rank, "sizes": [], "curves": None, "scaling": []}
    t0 = time.time()
    log["curves"] = transfer_measurements(rank, world, dev, H, cfg["transfer_tokens"], reps=reps, model=model)
    from moeplace.runmodel.profilefit import symm_best

    best = log["curves"]["nccl-a2a"]
    if log["curves"].get("symm"):
        fastest = {p["tokens_per_peer"]: p for p in symm_best(log["curves"])}
        best = [min(p, fastest.get(p["tokens_per_peer"], p), key=lambda q: q["us"]) for p in best]
    exchange = {p["tokens_per_peer"]: p["us"] for p in best}
    experts64 = None
    tuned: dict[int, object] = {}
    counted_fns: dict[int, object] = {}

    def expert_for(n: int):
        if n not in tuned:
            tuned[n] = tune_expert(ex, n)
        return tuned[n]

    for Tg in sizes:
        row: dict = {"tokens_per_gpu": Tg, "world": world, "capacity_rows_per_peer": capacity(Tg, world, k)}
        topk, gates = _routing(Tg, world, k, 1000 * rank + Tg, dev)
        x = torch.randn(Tg, H, generator=torch.Generator(device=dev).manual_seed(7 + rank), device=dev,
                        dtype=torch.bfloat16)
        ref = None
        if Tg <= cfg["check_max_tokens"]:
            if experts64 is None:
                experts64 = []
                for e in range(world):
                    w = seeded_expert(model, 0, e, seed=0, dtype=torch.bfloat16, device=dev)
                    experts64.append((w.w_in.double(), w.w_out.double()))
            ref = _reference(x, topk, gates, experts64)
        full = expert_for(world * capacity(Tg, world, k))
        row["expert_us"] = full.us
        row["expert_impl"] = full.name
        cap = capacity(Tg, world, k)
        tx = 2 * float(np.interp(math.log(cap), np.log(sorted(exchange)), [exchange[t] for t in sorted(exchange)]))
        row["transfer_us"] = round(tx, 2)
        row["max_expert_transfer_us"] = round(max(full.us, tx), 2)
        row["sum_of_parts_us"] = round(full.us + tx, 2)
        variants = {}
        plain_x = lambda t: expert_forward(t, ex.w_in, ex.w_out, "swiglu")  # noqa: E731 - cuBLAS, as written usually
        out = plain_variable(x, topk, gates, plain_x, lut, world)
        variants["plain variable eager"] = (median(time_collective(
            lambda: plain_variable(x, topk, gates, plain_x, lut, world), reps=reps)), out)
        pf = PlainFixed(x, topk, gates, plain_x, lut, world, capacity=capacity(Tg, world, k))
        out = pf.run().clone()
        variants["plain fixed eager"] = (median(time_collective(pf.run, reps=reps)), out)
        try:
            pf.capture()
            out = pf.run().clone()
            variants["plain fixed graph"] = (median(time_collective(pf.run, reps=reps)), out)
        except Exception as exc:  # noqa: BLE001
            row["plain_graph_error"] = str(exc).split("\n")[0][:160]
        del pf
        for transport, counted in [(t, c) for t in cfg["transports"] for c in (False, True)]:
            for M in (1, 2, 4):
                if Tg % M or (M >= 2 and Tg < cfg["min_tokens_two_mb"]) or (M == 4 and Tg < 2048):
                    continue
                name = f"fused {transport}{' counted' if counted else ''} mb{M}"
                try:
                    C = capacity(Tg // M, world, k)
                    if counted and C not in counted_fns:
                        counted_fns[C] = tune_counted(ex, world, C)[0]
                    fn = counted_fns[C] if counted else expert_for(world * C).fn
                    if fn is None:
                        raise ValueError("no counted expert for these dims")
                    step = EpStep(rank=rank, world=world, expert=fn, hidden=H, k=k, tokens=Tg,
                                  capacity=C, micro_batches=M, transport=transport, device=dev,
                                  dtype=torch.bfloat16, lut=lut, counted=counted)
                    step.load(x, topk, gates)
                    step.capture()
                    step.run()
                    out = step.out.clone()
                    variants[name] = (median(time_collective(step.run, reps=reps)), out)
                    row[f"{name} overflow"] = step.max_count() > C
                    del step
                except Exception as exc:  # noqa: BLE001 - a transport that fails here is reported, not fatal
                    row[f"{name} error"] = str(exc).split("\n")[0][:200]
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
        base = variants["plain variable eager"][1]
        for name, (us, out) in variants.items():
            row[name] = round(us, 2)
            row[f"{name} vs plain variable"] = round(_relerr(out, base.double()), 5)
            if ref is not None:
                row[f"{name} relerr"] = round(_relerr(out, ref), 5)
        fused = {n: v[0] for n, v in variants.items() if n.startswith("fused")}
        plain = {n: v[0] for n, v in variants.items() if n.startswith("plain")}
        if fused:
            best = min(fused, key=fused.get)
            row["fused best"] = best
            row["fused best us"] = round(fused[best], 2)
            row["plain best"] = min(plain, key=plain.get)
            row["plain best us"] = round(min(plain.values()), 2)
            row["speedup vs plain best"] = round(min(plain.values()) / fused[best], 3)
            row["fused / max(expert, transfer)"] = round(fused[best] / max(full.us, tx), 3)
        log["sizes"].append(row)
        del variants, x, topk, gates, ref
        torch.cuda.empty_cache()
    # Scaling: the same per-GPU tokens on one GPU (one expert, top-1: nothing moves) against the W-GPU step.
    solo = dist.new_group([0])
    for Tg in cfg["scaling_sizes"]:
        res = {"tokens_per_gpu": Tg}
        if rank == 0:
            topk1 = torch.zeros(Tg, 1, dtype=torch.int64, device=dev)
            g1 = torch.ones(Tg, 1, device=dev)
            x = torch.randn(Tg, H, device=dev, dtype=torch.bfloat16)
            step = EpStep(rank=0, world=1, expert=expert_for(Tg).fn, hidden=H, k=1, tokens=Tg, capacity=Tg,
                          micro_batches=1, transport="nccl", device=dev, dtype=torch.bfloat16,
                          lut=torch.zeros(1, dtype=torch.int64), group=solo)
            step.load(x, topk1, g1)
            step.capture()
            times = []
            for _ in range(reps):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                step.run()
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b) * 1e3)
            res["one_gpu_us"] = round(median(times), 2)
            res["one_gpu_expert_us"] = expert_for(Tg).us
            del step
        dist.barrier()
        log["scaling"].append(res)
    log["wall_s"] = round(time.time() - t0, 1)
    if rank == 0:
        Path(path).write_text(json.dumps(log))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    print("runtime_layer.py is part B of the runtime benchmark: run python benchmarks/runtime_bench.py --help")
