"""One rank's run, in named steps: set up (device, process group, rendezvous), build the experts, draw the
work (routing, schedules), build the step (fused or generic), warm up, measure (layer by layer, then whole
steps), the reference check's outputs, collect this rank's result and write (rank 0: measured.json)."""

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
from moeplace.runmodel.identity import Identity, cuda_index
from moeplace.runmodel.schedule import RankSchedule, rank_schedule
from moeplace.runmodel.workload import StepRouting, assign_ranks, draw_routing, rank_nodes, rank_table
from moeplace.runtime.collect import reference_check, summarize
from moeplace.runtime.comm import Comm
from moeplace.runtime.deps import import_torch
from moeplace.runtime.expert_runner import ExpertRunner
from moeplace.runtime.experts import DTYPES, load_expert, seeded_expert
from moeplace.runtime.failure import Watchdog
from moeplace.runtime.fused_engine import FusedStep, fused_eligible
from moeplace.runtime.generic_engine import GenericStep
from moeplace.runtime.timing import StepClock

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


@dataclass
class Rank:
    """What every step of one rank's run shares."""

    manifest: Manifest
    ident: Identity
    cfg: RunConfig
    state: dict
    device: object
    device_name: str
    dtype_name: str
    dtype: object
    comm: Comm
    tokens: int
    micro_batches: int

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def at(self, where: str, *, arm: bool = False) -> None:
        """Name the step the rank is in (what a failure reports); `arm`: under the collective watchdog."""
        self.state["where"] = where
        if arm:
            self.comm.watchdog.arm(self.manifest.timeouts.collective_s, where)

    def sync(self) -> None:
        """Wait for the device under the watchdog, then disarm it."""
        self.comm.watchdog.arm(self.manifest.timeouts.collective_s, self.state["where"])
        if self.cuda:
            torch.cuda.synchronize(self.device)
        self.comm.watchdog.disarm()


@dataclass
class Work:
    """The run's routing draws, this rank's schedules per draw and micro-batch, and the step's input."""

    routing: list[StepRouting]
    schedules: list[list[RankSchedule]]
    x0: object
    ingress: list


def execute(manifest: Manifest, ident: Identity, cfg: RunConfig, state: dict) -> None:
    run = set_up(manifest, ident, cfg, state)
    runners = build_experts(run)
    work = draw_work(run)
    step = build_step(run, runners, work)
    warm_up(run, step)
    timings = measure(run, step)
    outputs = check_outputs(run, step) if cfg.check else None
    result = rank_result(run, step, timings)
    write_results(run, work, result, outputs)


def set_up(manifest: Manifest, ident: Identity, cfg: RunConfig, state: dict) -> Rank:
    """The device and its threads, the process group, the failure hooks, and the rendezvous."""
    device = pick_device(cfg.device, ident.entry.local_gpu)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        per_host = sum(1 for r in manifest.ranks if r.host == ident.entry.host)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // per_host))
    dname = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})"
    dtype_name, dtype = pick_dtype(cfg.dtype, manifest.model.dtype, device)
    comm = Comm(ident, device, "nccl" if device.type == "cuda" else "gloo", manifest.timeouts.collective_s)

    def on_exit(message: str) -> None:
        try:
            _rank_file(cfg, ident, "failed", dname, error=message)
        finally:
            comm.report_failure(message)
            if ident.rank == 0 and not ident.use_agent_store:
                time.sleep(1.5)  # this process hosts the store: let the others read why before it goes

    state["on_exit"] = on_exit
    state["peer_failure"] = comm.peer_failure
    comm.watchdog = Watchdog(ident.rank, poll=comm.peer_failure, on_exit=on_exit)
    T = cfg.tokens or manifest.buffers.tokens_per_step
    run = Rank(manifest, ident, cfg, state, device, dname, dtype_name, dtype, comm, tokens=T,
               micro_batches=max(1, min(cfg.micro_batches or manifest.buffers.micro_batches, T)))
    run.at("rendezvous")
    comm.rendezvous(manifest.timeouts.startup_s)
    return run


def build_experts(run: Rank) -> list[ExpertRunner]:
    """This rank's experts (from the checkpoint, else seeded), each behind its CUDA graphs."""
    run.at("building experts")
    m, cfg, seed = run.manifest.model, run.cfg, run.manifest.routing.seed
    make = (lambda ml, e: load_expert(cfg.weights, m, ml, e, dtype=run.dtype, device=run.device)) if cfg.weights \
        else (lambda ml, e: seeded_expert(m, ml, e, seed=seed, dtype=run.dtype, device=run.device))
    return [ExpertRunner(make(e.moe_layer, e.expert), graphs=cfg.graphs, max_tokens=run.tokens)
            for e in run.ident.entry.experts]


def draw_work(run: Rank) -> Work:
    """The routing draws, this rank's schedule of each draw and micro-batch, and the seeded input."""
    run.at("drawing routing")
    manifest, rank, T = run.manifest, run.ident.rank, run.tokens
    slots = {(e.moe_layer, e.expert): i for i, e in enumerate(run.ident.entry.experts)}
    routing = draw_routing(manifest, T, max(1, run.cfg.routing_steps), base=run.cfg.manifest_dir)
    ranks_LER, replicas_LE = rank_table(manifest)
    ids = np.arange(T, dtype=np.int64)
    parts = np.array_split(ids, run.micro_batches)
    node_R, local_R = rank_nodes(manifest)
    scheds = []
    for r in routing:
        rank_TLK = assign_ranks(r.paths_TLK, ranks_LER, replicas_LE, ids)
        scheds.append([rank_schedule(manifest.flow, rank, manifest.world_size, p, r.paths_TLK[p], rank_TLK[p],
                                     r.gates_TLK[p], slots, node_R, local_R) for p in parts])
    x0 = seeded_input(T, manifest.model.hidden, manifest.routing.seed).to(device=run.device, dtype=run.dtype)
    return Work(routing, scheds, x0, [x0[p[0]:p[-1] + 1] for p in parts])


def build_step(run: Rank, runners: list[ExpertRunner], work: Work) -> GenericStep | FusedStep:
    """The fused step where it can run (`--engine auto|epstep`), else the generic engine."""
    reason = fused_eligible(run.manifest, run.tokens, run.micro_batches) if run.cuda else "the fused step needs CUDA"
    if run.cfg.engine == "epstep" and reason:
        raise InputError(f"--engine epstep: {reason}", field="--engine")
    step = FusedStep(run, runners, work) if run.cfg.engine != "generic" and reason is None else \
        GenericStep(run, runners, work)
    run.state["engine"], run.state["transport"] = step.engine, step.transport
    return step


def warm_up(run: Rank, step: GenericStep | FusedStep) -> None:
    """Untimed steps, every other one layer by layer (both timed modes get warm)."""
    for i in range(run.cfg.warmup):
        run.at(f"warm-up step {i}", arm=True)
        step(i, layer_sync=i % 2 == 1)
        run.sync()


@dataclass
class Timings:
    layer_us: list[list[float]]
    step_us: list[float]
    overflow: float
    sent_bytes: dict[int, float]


def measure(run: Rank, step: GenericStep | FusedStep) -> Timings:
    """`steps` steps layer by layer (a barrier before each layer), then `steps` whole steps."""
    L, cuda = run.manifest.model.num_moe_layers, run.cuda
    step.start_counting()
    run.comm.sent_bytes = {}  # the transports count what the timed steps send
    layer_us, step_us, overflow = [], [], 0.0
    for i in range(run.cfg.steps):
        run.at(f"timed step {i} (layer by layer)", arm=True)
        _fault(run.ident.rank, i)
        clock = StepClock(cuda)
        step(i, clock=clock, layer_sync=True)
        run.sync()
        layer_us.append(clock.durations_us([(2 * l, 2 * l + 1) for l in range(L)]))
        overflow += step.overflow_of_step()
    for i in range(run.cfg.steps):
        run.at(f"timed step {i} (whole step)", arm=True)
        clock = StepClock(cuda)
        run.comm.barrier(hold_us=300.0)
        clock.mark()
        step(i, clock=clock)
        clock.mark()
        run.sync()
        step_us.append(clock.durations_us([(0, 1)])[0])
    # sent bytes: the 2 x steps timed steps (not the check's)
    return Timings(layer_us, step_us, step.overflow(overflow, run.cfg.steps), dict(run.comm.sent_bytes))


def check_outputs(run: Rank, step: GenericStep | FusedStep) -> list:
    """One more step on the first routing draw: (home tokens, rows) per micro-batch, for the reference check."""
    run.at("the reference check", arm=True)
    tables = step(0)
    run.sync()
    return step.outputs(tables)


def rank_result(run: Rank, step: GenericStep | FusedStep, t: Timings) -> dict:
    run.at("collecting results")
    ident = run.ident
    return {"layer_us": t.layer_us, "step_us": t.step_us, "bytes_to_node": step.bytes_to_node(run, t.sent_bytes),
            "host": ident.host, "local_gpu": ident.entry.local_gpu, "node": ident.entry.node, "overflow": t.overflow,
            "engine": run.state["engine"], "transport": run.state["transport"],
            "capacity_rows_per_peer": step.capacity_rows_per_peer, "expert_rows": step.expert_rows}


def write_results(run: Rank, work: Work, result: dict, outputs: list | None) -> None:
    """Every rank posts its result (and outputs) to the store; rank 0 gathers them, checks against the
    reference and writes measured.json; every rank writes its rank file."""
    manifest, comm, cfg, rank = run.manifest, run.comm, run.cfg, run.ident.rank
    comm.watchdog.arm(manifest.timeouts.collective_s + 30.0, run.state["where"])
    comm.store.set(f"result/{rank}", json.dumps(result))
    if outputs is not None:
        for m, (tok, arr) in enumerate(outputs):
            comm.store.set(f"out/{rank}/{m}", np.ascontiguousarray(tok, dtype=np.int64).tobytes() + arr.tobytes())
        comm.store.set(f"out/{rank}/n", str(len(outputs)))
    if rank == 0:
        results = {}
        for r in range(manifest.world_size):
            comm.store.wait([f"result/{r}"])
            results[r] = json.loads(comm.store.get(f"result/{r}"))
        check = reference_check(manifest, cfg, comm, run.tokens, run.dtype_name, work.routing[0], work.x0) \
            if cfg.check else None
        measured = summarize(manifest, cfg, results, run.device_name, comm.backend, run.dtype_name, run.micro_batches,
                             run.tokens, len(work.schedules), check)
        write_text(cfg.out / "measured.json", dumps_json(measured.model_dump(mode="json")))
        if check is not None and not check.passed:
            raise RuntimeError(f"the result differs from the reference: relative error {check.rel_err:.3g} > "
                               f"{check.tolerance:g}")
    comm.watchdog.disarm()
    _rank_file(cfg, run.ident, "ok", run.device_name)
