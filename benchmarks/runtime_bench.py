"""The runtime's GPU benchmark, one command on a host with 1-8 GPUs:

    python benchmarks/runtime_bench.py --out DIR [--quick]

A  one GPU:  GEMM and HBM ceilings; the expert (seed dims, bf16) at 16..8192 tokens, fastest of cuBLAS and
             the small-batch Triton kernel, against the SwiGLU ceiling and the weight-read floor; its error in float64
K  one GPU:  the counted expert (runtime.counted) on an 8 x 1024-row buffer at every count of part A, one
             CUDA graph, against the expert at exactly that count (target <= 1.15x + 5 us)
B  W GPUs:   transfer curves; one MoE layer step (dispatch + expert + combine) at 128..8192 tokens per GPU:
             the plain torch.distributed implementation (variable splits eager, fixed capacity eager and as a
             CUDA graph) and the fused step (symm / NCCL transport, one or two micro-batches) side by side,
             slowest rank, median; scaling 1 -> W GPUs
P  profile:  the calibrated hardware profile from A and B (what `moeplace calibrate` writes)
C  worker:   plan -> manifest -> `torchrun -m moeplace.runtime.worker` (ep, 2 MoE layers x W experts) at
             several token counts -> measured.json -> predicted vs measured with the calibrated profile

Writes DIR/results.json, DIR/results.md (the tables), DIR/profile.json, DIR/validation.md, DIR/log.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
os.environ.setdefault("NVSHMEM_DISABLE_NVLS", "1")

try:
    import torch  # noqa: E402
except ModuleNotFoundError:
    sys.exit("runtime_bench.py needs PyTorch, which is not installed: pip install 'moeplace[runtime]' (torch >= 2.6; CUDA GPUs to run it)")

LOG: list[str] = []


def say(text: str) -> None:
    line = f"[{time.strftime('%H:%M:%S')}] {text}"
    LOG.append(line)
    print(line, flush=True)


def part_a(model, tokens: list[int]) -> dict:
    from moeplace.runtime import calibrate as cal
    from moeplace.runtime.expertops import tune_expert
    from moeplace.runtime.experts import expert_forward, seeded_expert

    torch.cuda.set_device(0)
    from moeplace.runtime.expertops import graph_time_us

    ceil = cal.ceilings()
    tiny = torch.zeros(16, device="cuda")
    ceil["graph_launch_us"] = round(graph_time_us(lambda t: t.add_(1), tiny, reps=50), 2)
    say(f"ceilings: {ceil} (graph_launch_us: one tiny kernel replayed as a graph, timed like the expert)")
    dev = torch.device("cuda", 0)
    ex = seeded_expert(model, 0, 0, seed=0, dtype=torch.bfloat16, device=dev)
    weights = model.expert_params * 2
    rows = []
    for n in tokens:
        c = tune_expert(ex, n)
        flops = 2 * model.expert_params * n
        floor_us = (weights + 2 * n * model.hidden * 2) / (ceil["hbm_tbps"] * 1e12) * 1e6
        ceiling_us = max(flops / (ceil["bf16_tflops"] * 1e12) * 1e6, floor_us)
        x = torch.randn(n, model.hidden, device=dev, dtype=torch.bfloat16)
        ref = expert_forward(x.double(), ex.w_in.double(), ex.w_out.double(), "swiglu")
        err = float(torch.linalg.vector_norm(c.fn(x).double() - ref) / torch.linalg.vector_norm(ref))
        row = {"tokens": n, "us": c.us, "impl": c.name, "tflops": round(flops / (c.us * 1e-6) / 1e12, 1),
               "floor_us": round(floor_us, 2), "ceiling_us": round(ceiling_us, 2),
               "of_ceiling": round(ceiling_us / c.us, 3), "over_floor": round(c.us / floor_us, 3),
               "relerr_vs_fp64": round(err, 5), "tried": c.tried}
        row["behind_spin_us"] = behind_spin_us(c.fn, x)
        row["behind_spin_over_floor"] = round(row["behind_spin_us"] / floor_us, 3)
        if n <= 512:
            row["pipelined_us"], row["pipelined_cublas_us"] = pipelined_pair(model, ex, c, n, dev)
            row["pipelined_over_floor"] = round(row["pipelined_us"] / floor_us, 3)
        rows.append(row)
        say(f"expert {n:5d} tokens: {c.us:8.1f} us ({c.name}), {row['tflops']} TFLOP/s, {row['of_ceiling']:.0%} of "
            f"ceiling, {row['over_floor']:.2f}x floor, err {err:.1e}; pipelined {row.get('pipelined_us')} us "
            f"(cuBLAS {row.get('pipelined_cublas_us')}); tried {c.tried}")
    return {"ceilings": ceil, "expert": rows}


def behind_spin_us(fn, x, reps: int = 30) -> float:
    """Median µs of one lone graph replay of fn(x) with the host's launch latency hidden: a spin kernel runs
    first, so the replay is enqueued before the device reaches the start event (the graph's own time)."""
    from moeplace.runtime.expertops import _captured
    from moeplace.runtime.timing import hold_device

    g = _captured([fn], x, 3)
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        hold_device(100.0)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3)
    times.sort()
    return round(times[len(times) // 2], 2)


def part_k(model, expert_rows: list[dict], segments: int = 8) -> dict:
    """The counted expert (`runtime.counted`) on a [segments x C] buffer of capacity = the largest token count
    of part A, at every count c of part A (uneven over the segments), one CUDA graph replayed with each count
    vector: lone replay and kernel time against the expert at exactly c (part A's tuned expert), its error
    against float64, and the target (<= 1.15 x the expert at c + 5 µs)."""
    from moeplace.runtime.counted import _split, counted_error, tune_counted
    from moeplace.runtime.experts import expert_forward, seeded_expert

    dev = torch.device("cuda", 0)
    ex = seeded_expert(model, 0, 0, seed=0, dtype=torch.bfloat16, device=dev)
    cap = max(r["tokens"] for r in expert_rows)
    C = cap // segments
    fn, tried = tune_counted(ex, segments, C, baseline_us={r["tokens"]: r["us"] for r in expert_rows})
    if fn is None:
        return {"error": "no counted expert for these dims"}
    say(f"counted layouts: {json.dumps(tried)}")
    say(f"counted expert {fn.label}: capacity {segments} x {C}, float64 check {counted_error(fn, ex):.2e}")
    x = torch.randn(cap, model.hidden, device=dev, dtype=torch.bfloat16)
    counts = torch.zeros(segments, dtype=torch.int32, device=dev)
    out = torch.empty_like(x)
    g = torch.Generator().manual_seed(0)
    rows = []
    for r in expert_rows:
        c = r["tokens"]
        counts.copy_(_split(c, segments, C, g))
        lone = graph_us = None
        from moeplace.runtime.expertops import graph_time_us

        graph_us = graph_time_us(lambda t: fn(t, counts, out=out), x, reps=30)
        lone = behind_spin_us(lambda t: fn(t, counts, out=out), x)
        sel = torch.cat([torch.arange(p * C, p * C + int(n)) for p, n in enumerate(counts.tolist())]).to(dev)
        ref = expert_forward(x[sel].double(), ex.w_in.double(), ex.w_out.double(), "swiglu")
        err = float(torch.linalg.vector_norm(out[sel].double() - ref) / torch.linalg.vector_norm(ref))
        bound = 1.15 * r["us"] + 5.0
        row = {"count": c, "us": round(graph_us, 2), "behind_spin_us": lone, "expert_at_c_us": r["us"],
               "expert_at_c_behind_spin_us": r.get("behind_spin_us"), "ratio": round(graph_us / r["us"], 3),
               "bound_us": round(bound, 2), "met": graph_us <= bound, "relerr_vs_fp64": round(err, 5),
               "padded_expert_us": expert_rows[-1]["us"]}
        rows.append(row)
        say(f"counted c={c:5d}: {graph_us:8.1f} us (behind spin {lone}) vs expert at c {r['us']} us: "
            f"{row['ratio']:.3f}x, bound {bound:.1f} -> {'met' if row['met'] else 'MISSED'}; err {err:.1e}")
    return {"label": fn.label, "layouts": tried, "segments": segments, "rows_per_segment": C, "rows": rows,
            "all_met": all(r["met"] for r in rows)}


def pipelined_pair(model, ex, choice, n: int, dev) -> tuple[float, float]:
    """Kernel time per expert call (`expertops.pipelined_time_us`) of the chosen implementation and of cuBLAS,
    on 4 experts' weights (the tuned expert and 3 more seeded ones), back to back in one graph."""
    from moeplace.runtime import kernels
    from moeplace.runtime.expertops import pipelined_time_us
    from moeplace.runtime.experts import seeded_expert

    experts = [ex] + [seeded_expert(model, 0, e, seed=0, dtype=torch.bfloat16, device=dev) for e in (1, 2, 3)]
    x = torch.randn(n, model.hidden, device=dev, dtype=torch.bfloat16)
    if isinstance(choice.fn, kernels.SmallBatchSwiGLU):
        fns = [kernels.SmallBatchSwiGLU(e.w_in, e.w_out, n, choice.fn.up_cfg, choice.fn.down_cfg) for e in experts]
    else:
        fns = experts
    chosen = pipelined_time_us(fns, x)
    cublas = chosen if fns is experts else pipelined_time_us(experts, x)
    return round(chosen, 2), round(cublas, 2)


def part_b(world: int, cfg: dict) -> dict:
    import torch.multiprocessing as mp

    from moeplace.runtime.calibrate import free_port
    from runtime_layer import layer_worker

    path = f"/tmp/moeplace_layer_{world}.json"
    mp.spawn(layer_worker, args=(world, free_port(), cfg, path), nprocs=world, join=True)
    return json.loads(Path(path).read_text())


def make_run_dir(out: Path, world: int, tokens_per_gpu: int, micro_batches: int, port: int) -> Path:
    """Plan (ep, 2 MoE layers x W experts, one of each layer per GPU) and its manifest, written directly."""
    from moeplace.fileio import dumps_json, write_text
    from moeplace.launch.manifest import Buffers, ExpertRef, Manifest, RankEntry, RoutingSource
    from moeplace.placement.plan import plan_json
    from moeplace.placement.presets import load_cluster, load_model
    from moeplace.planner import PlanRequest, plan_placement

    host = socket.gethostname()
    model = load_model(None, name=f"seed-dims-2x{world}", num_layers=2, dense_layers=[], num_experts=world, top_k=2)
    cluster = load_cluster("h100-sxm", name="bench", num_nodes=1, gpus_per_node=world, experts_per_gpu=2, hosts=host)
    outcome = plan_placement(PlanRequest(model=model, cluster=cluster, flow="ep", balance_per_layer=True,
                                         time_limit_s=5.0, seed=0))
    plan = outcome.plan
    d = out / f"run-{world}gpu-{tokens_per_gpu}"
    d.mkdir(parents=True, exist_ok=True)
    text = plan_json(plan)
    write_text(d / "plan.json", text)
    import hashlib

    ranks = {}
    for p in plan.placements:
        ranks.setdefault(p.rank, (p, []))[1].append(ExpertRef(moe_layer=p.moe_layer, layer=p.layer, expert=p.expert,
                                                              replica=p.replica or 0))
    man = Manifest(plan_sha256=hashlib.sha256(text.encode()).hexdigest(), model=plan.model, flow="ep", dedup=True,
                   world_size=world, gpus_per_node=world, hosts=[host], master_addr="127.0.0.1", master_port=port,
                   buffers=Buffers(tokens_per_step=tokens_per_gpu * world, capacity_tokens_per_peer=tokens_per_gpu,
                                   micro_batches=micro_batches),
                   routing=RoutingSource(kind="synthetic", seed=int(plan.stats.provenance.get("seed", 0)),
                                         knobs={k: float(v) for k, v in plan.stats.provenance.items()
                                                if k in ("skew", "coact", "affinity", "cluster_size")}),
                   ranks=[RankEntry(rank=r, host=host, node=0, local_gpu=p.local_gpu, experts=e)
                          for r, (p, e) in sorted(ranks.items())])
    write_text(d / "manifest.json", dumps_json(man.model_dump(mode="json")))
    return d


def part_c(out: Path, world: int, sizes: list[int], profile_path: Path, steps: int) -> dict:
    from moeplace.costmodel.presets import load_profile
    from moeplace.evaluation import load_plan_problem
    from moeplace.runmodel.measured import load_measured
    from moeplace.runmodel.validation import compare, headline

    profile = load_profile(str(profile_path))
    runs, all_rows = [], []
    for Tg in sizes:
        mb = 4 if Tg >= 2048 else 2 if Tg >= 1024 else 1
        d = make_run_dir(out, world, Tg, mb, 29500)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}", "-m",
               "moeplace.runtime.worker", "--manifest", str(d / "manifest.json"), "--out", str(d / "run"),
               "--steps", str(steps), "--warmup", "3"] + (["--check"] if Tg <= 128 else [])
        env = dict(os.environ, MOEPLACE_HOST=socket.gethostname(),
                   PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        t0 = time.time()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        say(f"worker {world} GPUs x {Tg} tokens: exit {p.returncode} in {time.time() - t0:.0f} s "
            f"{p.stderr.strip().splitlines()[-1] if p.returncode and p.stderr.strip() else ''}")
        if p.returncode:
            runs.append({"tokens_per_gpu": Tg, "error": p.stderr[-1500:]})
            continue
        m = load_measured(d / "run" / "measured.json")
        rows = compare(load_plan_problem(d), m, profile)
        all_rows += rows
        runs.append({"tokens_per_gpu": Tg, "engine": m.engine, "transport": m.transport, "micro_batches": mb,
                     "check": m.check.model_dump() if m.check else None, "tokens_per_s": m.tokens_per_s,
                     "measured": json.loads((d / "run" / "measured.json").read_text()),
                     "rows": [{"what": r.what, "measured_us": round(r.measured_us, 2),
                               "predicted_us": round(r.predicted_us, 2), "error": round(r.error, 4),
                               "expert_us": round(r.expert_us, 2), "transfer_us": round(r.transfer_us, 2)}
                              for r in rows]})
        for r in rows:
            say(f"  {r.what}: measured {r.measured_us:.1f} us, predicted {r.predicted_us:.1f} us ({r.error:+.1%})")
    return {"runs": runs, "headline": headline(all_rows) if all_rows else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "benchmarks" / "runtime-out"))
    ap.add_argument("--quick", action="store_true", help="a few sizes, few repetitions (a smoke test)")
    ap.add_argument("--worlds", default=None, help="GPU counts for parts B and C, e.g. 2,4 [default: 2 and all]")
    ap.add_argument("--parts", default="akbpc", help="which parts to run (a, k: the counted expert after a, b, p, c)")
    ap.add_argument("--profiles", default=None, help="folder with profile-x{W}.json for part C [default: --out]")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from moeplace.costmodel.presets import load_profile
    from moeplace.placement.presets import load_model
    from moeplace.runmodel.profilefit import build_profile

    gpus = torch.cuda.device_count()
    worlds = [int(w) for w in args.worlds.split(",")] if args.worlds else sorted({min(2, gpus), gpus} - {1})
    if set(args.parts) & set("bpc") and (not worlds or any(w < 2 or w > gpus for w in worlds)):
        sys.exit(f"--worlds {args.worlds}: parts B and C need 2 to {gpus} GPUs per world (top-2 routing across ranks)"
                 if gpus >= 2 else f"parts B, P and C need 2 or more GPUs; this host has {gpus}: run --parts ak")
    env = {"device": torch.cuda.get_device_name(0), "gpus": gpus, "torch": torch.__version__,
           "cuda": str(torch.version.cuda), "nccl": ".".join(map(str, torch.cuda.nccl.version())),
           "host": socket.gethostname(), "python": platform.python_version(),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    try:
        env["nvidia-smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,clocks.max.sm,driver_version",
                                            "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
        env["topology"] = subprocess.run(["nvidia-smi", "topo", "-m"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    say(f"environment: {json.dumps({k: v for k, v in env.items() if k != 'topology'})}")
    results: dict = {"environment": env, "quick": args.quick, "b": {}, "c": {}}
    model = load_model(None)
    q = args.quick
    if "a" in args.parts:
        results["a"] = part_a(model, [128, 2048] if q else [16, 64, 128, 256, 512, 1024, 2048, 4096, 8192])
        if "k" in args.parts:
            results["a"]["counted"] = part_k(model, results["a"]["expert"])
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    for world in worlds:
        if "b" in args.parts:
            cfg = {"reps": 10 if q else 30, "sizes": [128, 2048] if q else [128, 256, 512, 1024, 2048, 4096, 8192],
                   "transfer_tokens": [1, 128, 2048] if q else [1, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192],
                   "transports": ["symm", "symm-ce", "nccl"], "min_tokens_two_mb": 512, "check_max_tokens": 2048,
                   "scaling_sizes": [128, 4096] if q else [128, 1024, 4096]}
            results["b"][str(world)] = part_b(world, cfg)
            for row in results["b"][str(world)]["sizes"]:
                say(f"layer x{world} " + json.dumps({k: v for k, v in row.items() if "vs plain" not in k}))
            for row in results["b"][str(world)]["scaling"]:
                say(f"scaling x{world} " + json.dumps(row))
        if "p" in args.parts and "a" in results and str(world) in results["b"]:
            dev = torch.cuda.get_device_name(0)
            prof = build_profile(name=dev.lower().replace(" ", "-") + f"-x{world}", device=dev,
                                 memory_gb=torch.cuda.get_device_properties(0).total_memory / 1e9,
                                 software={k: env[k] for k in ("torch", "cuda", "nccl", "python")},
                                 ceilings=results["a"]["ceilings"], model=model,
                                 expert=[{"tokens": r["tokens"], "us": r["us"]} for r in results["a"]["expert"]],
                                 curves=results["b"][str(world)]["curves"], world=world,
                                 network_from=load_profile("h100-sxm"))
            (out / f"profile-x{world}.json").write_text(json.dumps(prof.model_dump(mode="json"), indent=2) + "\n")
            say(f"profile x{world}: nvlink {prof.nvlink_gbps} GB/s + {prof.nvlink_latency_us} us, "
                f"floor {prof.transfer_floor_us} us")
        prof_path = Path(args.profiles or out) / f"profile-x{world}.json"
        if "c" in args.parts and prof_path.is_file():
            results["c"][str(world)] = part_c(out, world, [128, 1024] if q else [128, 512, 2048, 8192], prof_path,
                                              steps=5 if q else 20)
            say(f"validation x{world}: {results['c'][str(world)]['headline']}")
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
        (out / "log.txt").write_text("\n".join(LOG) + "\n")


if __name__ == "__main__":
    main()
