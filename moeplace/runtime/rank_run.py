"""One rank's run: rendezvous, experts, routing, schedules, warm-up, timed steps, results (rank 0: measured.json)."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moeplace.errors import InputError
from moeplace.fileio import dumps_json, write_text
from moeplace.launch.manifest import Manifest
from moeplace.runtime.collect import reference_check, summarize
from moeplace.runtime.comm import Comm
from moeplace.runtime.deps import import_torch
from moeplace.runtime.generic_engine import Engine, StepClock
from moeplace.runtime.experts import DTYPES, load_expert, seeded_expert
from moeplace.runtime.failure import Watchdog
from moeplace.runmodel.identity import Identity, cuda_index
from moeplace.runmodel.profilefit import default_transport
from moeplace.runtime.fused_engine import FusedRun, fused_eligible
from moeplace.runtime.expert_runner import ExpertRunner
from moeplace.runmodel.schedule import rank_schedule
from moeplace.runmodel.workload import assign_ranks, draw_routing, rank_nodes, rank_table

torch = import_torch()


@dataclass(frozen=True)
class RunConfig:
    out: Path
    steps: int = 10
    warmup: int = 3
    device: str = "auto"
    dtype: str = "auto"
    tokens: int | None = None
    micro_batches: int | None = None
    routing_steps: int = 2
    weights: str | None = None
    graphs: bool = True
    engine: str = "auto"
    transport: str = "auto"
    check: bool = False
    manifest_dir: Path = Path(".")
    manifest_sha256: str = ""


def pick_device(choice: str, local_gpu: int):
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError("--device cuda but torch sees no CUDA device", field="--device")
    return torch.device("cuda", cuda_index(local_gpu, torch.cuda.device_count()))


def pick_dtype(choice: str, model_dtype: str, device) -> tuple[str, object]:
    if choice == "auto":
        choice = "fp32" if device.type == "cpu" else ("bf16" if model_dtype in ("bf16", "fp8") else model_dtype)
    return choice, DTYPES[choice]


def seeded_input(num_tokens: int, hidden: int, seed: int):
    gen = torch.Generator(device="cpu").manual_seed(int(np.random.SeedSequence([seed, 0x1A]).generate_state(1)[0]))
    return torch.randn(num_tokens, hidden, generator=gen)


def _rank_file(cfg: RunConfig, ident: Identity, status: str, device: str, **extra) -> None:
    body = {"rank": ident.rank, "host": ident.host, "local_rank": ident.local_rank, "local_gpu": ident.entry.local_gpu,
            "experts": [e.model_dump() for e in ident.entry.experts], "status": status, "steps": cfg.steps,
            "device": device, **extra}
    write_text(cfg.out / "ranks" / f"rank-{ident.rank:05d}.json", dumps_json(body))


def injected_fault(rank: int, step: int) -> str | None:
    """`MOEPLACE_FAULT=rank=R,step=S,mode=exit|hang`: a test aid that kills or freezes one rank at a step."""
    raw = os.environ.get("MOEPLACE_FAULT")
    if not raw:
        return None
    spec = dict(part.split("=", 1) for part in raw.split(",") if "=" in part)
    if int(spec.get("rank", -1)) == rank and int(spec.get("step", 0)) == step:
        return spec.get("mode", "exit")
    return None


def _fault(rank: int, step: int) -> None:
    mode = injected_fault(rank, step)
    if mode == "exit":
        os._exit(9)
    if mode == "hang":
        while True:
            time.sleep(3600)


def execute(manifest: Manifest, ident: Identity, cfg: RunConfig, state: dict) -> None:
    model, rank, world = manifest.model, ident.rank, manifest.world_size
    device = pick_device(cfg.device, ident.entry.local_gpu)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        per_host = sum(1 for r in manifest.ranks if r.host == ident.entry.host)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // per_host))
    dname = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})"
    dtype_name, dtype = pick_dtype(cfg.dtype, model.dtype, device)
    comm = Comm(ident, device, "nccl" if device.type == "cuda" else "gloo", manifest.timeouts.collective_s)

    def on_exit(message: str) -> None:
        try:
            _rank_file(cfg, ident, "failed", dname, error=message)
        finally:
            comm.report_failure(message)
            if rank == 0 and not ident.use_agent_store:
                time.sleep(1.5)  # this process hosts the store: let the others read why before it goes

    state["on_exit"] = on_exit
    state["peer_failure"] = comm.peer_failure
    comm.watchdog = Watchdog(rank, poll=comm.peer_failure, on_exit=on_exit)
    state["where"] = "rendezvous"
    comm.rendezvous(manifest.timeouts.startup_s)

    state["where"] = "building experts"
    slots = {(e.moe_layer, e.expert): i for i, e in enumerate(ident.entry.experts)}
    T = cfg.tokens or manifest.buffers.tokens_per_step
    M = max(1, min(cfg.micro_batches or manifest.buffers.micro_batches, T))
    make = (lambda ml, e: load_expert(cfg.weights, model, ml, e, dtype=dtype, device=device)) if cfg.weights else \
        (lambda ml, e: seeded_expert(model, ml, e, seed=manifest.routing.seed, dtype=dtype, device=device))
    runners = [ExpertRunner(make(e.moe_layer, e.expert), graphs=cfg.graphs, max_tokens=T) for e in ident.entry.experts]

    state["where"] = "drawing routing"
    routing = draw_routing(manifest, T, max(1, cfg.routing_steps), base=cfg.manifest_dir)
    ranks_LER, replicas_LE = rank_table(manifest)
    ids = np.arange(T, dtype=np.int64)
    parts = np.array_split(ids, M)
    node_R, local_R = rank_nodes(manifest)
    scheds = []
    for r in routing:
        rank_TLK = assign_ranks(r.paths_TLK, ranks_LER, replicas_LE, ids)
        scheds.append([rank_schedule(manifest.flow, rank, world, p, r.paths_TLK[p], rank_TLK[p], r.gates_TLK[p], slots,
                                     node_R, local_R) for p in parts])
    x0 = seeded_input(T, model.hidden, manifest.routing.seed).to(device=device, dtype=dtype)
    ingress = [x0[p[0]:p[-1] + 1] for p in parts]
    reason = fused_eligible(manifest, T, M) if device.type == "cuda" else "the fused step needs CUDA"
    if cfg.engine == "epstep" and reason:
        raise InputError(f"--engine epstep: {reason}", field="--engine")
    fused = None
    if cfg.engine != "generic" and reason is None:
        state["where"] = "building the fused step (tuning experts, capturing graphs)"
        transport = _transport(cfg.transport, manifest, comm, M)
        experts = [r.expert for r in runners]
        fused = FusedRun(manifest, rank, experts, routing, x0, micro_batches=M, transport=transport, device=device,
                         dtype=dtype, graphs=cfg.graphs)
        state["engine"], state["transport"] = "epstep", transport
        step_fn = lambda v, clock=None, layer_sync=False: (fused.load(v), fused.step(comm, clock, layer_sync))[1]  # noqa: E731
    else:
        cap = max(1, -(-manifest.buffers.capacity_tokens_per_peer // M))
        engine = Engine(comm, runners, dtype, device, cap)
        state["where"] = "capturing CUDA graphs" if device.type == "cuda" and cfg.graphs else "preparing"
        engine.prepare([s for v in scheds for s in v])
        state["engine"], state["transport"] = "generic", "p2p"
        step_fn = lambda v, clock=None, layer_sync=False: engine.step(scheds[v % len(scheds)], ingress, clock=clock,  # noqa: E731
                                                                      layer_sync=layer_sync)

    def sync(what: str) -> None:
        comm.watchdog.arm(manifest.timeouts.collective_s, what)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        comm.watchdog.disarm()

    L = model.num_moe_layers
    for i in range(cfg.warmup):
        state["where"] = f"warm-up step {i}"
        comm.watchdog.arm(manifest.timeouts.collective_s, state["where"])
        step_fn(i, layer_sync=i % 2 == 1)
        sync(state["where"])
    overflow = 0.0
    if fused is None:
        engine.overflow_rows = 0
    comm.sent_bytes = {}  # the transports count what the timed steps send
    layer_us, step_us = [], []
    for i in range(cfg.steps):
        state["where"] = f"timed step {i} (layer by layer)"
        comm.watchdog.arm(manifest.timeouts.collective_s, state["where"])
        _fault(rank, i)
        clock = StepClock(device.type == "cuda")
        step_fn(i, clock=clock, layer_sync=True)
        sync(state["where"])
        layer_us.append(clock.durations_us([(2 * l, 2 * l + 1) for l in range(L)]))
        if fused is not None:
            overflow += max(0, fused.overflow())
    for i in range(cfg.steps):
        state["where"] = f"timed step {i} (whole step)"
        comm.watchdog.arm(manifest.timeouts.collective_s, state["where"])
        clock = StepClock(device.type == "cuda")
        comm.barrier(hold_us=300.0)
        clock.mark()
        step_fn(i, clock=clock)
        clock.mark()
        sync(state["where"])
        step_us.append(clock.durations_us([(0, 1)])[0])
    if fused is None:
        overflow = engine.overflow_rows / max(1, cfg.steps * 2)
    sent_bytes = dict(comm.sent_bytes)  # the 2 x steps timed steps (not the check's)
    outputs = None
    if cfg.check:
        state["where"] = "the reference check"
        comm.watchdog.arm(manifest.timeouts.collective_s, state["where"])
        tables = step_fn(0)
        sync(state["where"])
        if fused is not None:
            outputs = [(fused.out_tokens, tables.float().cpu().numpy())]
        else:
            outputs = [(s.out_tokens, t.float().cpu().numpy()) for s, t in zip(scheds[0], tables)]

    state["where"] = "collecting results"
    node_of = {r.rank: r.node for r in manifest.ranks}
    bytes_to_node: dict[int, float] = {}
    if fused is None:  # counted by Comm.start over the 2 x steps timed steps
        for peer, nbytes in sent_bytes.items():
            bytes_to_node[node_of[peer]] = bytes_to_node.get(node_of[peer], 0.0) + nbytes / max(1, 2 * cfg.steps)
    else:  # the fused step sends whole [W x C] buffers: 2 M C rows per peer per layer
        row_bytes = model.hidden * torch.tensor([], dtype=dtype).element_size()
        for step in fused.layers:
            for p in range(world):
                if p != rank:
                    bytes_to_node[node_of[p]] = bytes_to_node.get(node_of[p], 0.0) + 2.0 * step.M * step.C * row_bytes
    result = {"layer_us": layer_us, "step_us": step_us, "bytes_to_node": bytes_to_node, "host": ident.host,
              "local_gpu": ident.entry.local_gpu, "node": ident.entry.node, "overflow": overflow,
              "engine": state["engine"], "transport": state["transport"],
              "capacity_rows_per_peer": fused.layers[0].C if fused is not None else None,
              "expert_rows": (round(fused.received_rows, 2) if fused is not None and all(fused.counted) else None)}
    comm.watchdog.arm(manifest.timeouts.collective_s + 30.0, state["where"])
    comm.store.set(f"result/{rank}", json.dumps(result))
    if outputs is not None:
        for m, (tok, arr) in enumerate(outputs):
            comm.store.set(f"out/{rank}/{m}", np.ascontiguousarray(tok, dtype=np.int64).tobytes() + arr.tobytes())
        comm.store.set(f"out/{rank}/n", str(len(outputs)))
    if rank == 0:
        results = {}
        for r in range(world):
            comm.store.wait([f"result/{r}"])
            results[r] = json.loads(comm.store.get(f"result/{r}"))
        check = reference_check(manifest, cfg, comm, T, dtype_name, routing[0], x0) if cfg.check else None
        measured = summarize(manifest, cfg, results, dname, comm.backend, dtype_name, M, T, len(scheds), check)
        write_text(cfg.out / "measured.json", dumps_json(measured.model_dump(mode="json")))
        if check is not None and not check.passed:
            raise RuntimeError(f"the result differs from the reference: relative error {check.rel_err:.3g} > "
                               f"{check.tolerance:g}")
    comm.watchdog.disarm()
    _rank_file(cfg, ident, "ok", dname)


def _transport(choice: str, manifest: Manifest, comm: Comm, micro_batches: int) -> str:
    """`profilefit.default_transport` inside one node with symmetric memory (agreed by all ranks), else NCCL."""
    if choice == "nccl" or len(manifest.hosts) > 1 or (choice == "auto" and default_transport(
            manifest.world_size, micro_batches) == "nccl"):
        return "nccl"
    try:
        import torch.distributed._symmetric_memory as symm_mem

        ok = hasattr(symm_mem, "empty") and hasattr(symm_mem, "rendezvous")
    except ImportError:
        ok = False
    flag = torch.tensor([1.0 if ok else 0.0], device=comm.device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    if flag.item() < 1.0:
        if choice != "auto":
            raise InputError(f"--transport {choice}: this PyTorch build has no symmetric memory", field="--transport")
        return "nccl"
    if choice != "auto":
        return choice
    return default_transport(manifest.world_size, micro_batches)
