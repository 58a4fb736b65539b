"""What the fused expert-parallel step executes, charged with a profile's measured curves (numpy only).

`epstep.EpStep` runs each MoE layer with static shapes, the same on every rank. Per micro-batch of
T_m = tokens per GPU / M home tokens, with C rows per peer (`runtime.fused_engine.fused_capacity`, recorded in
`measured.json` as `capacity_rows_per_peer`) and b = hidden x dtype bytes per row:

    task      stream    what runs                                    charged (µs)
    pack      compute   gather the W x C send rows (nccl, symm-ce)    2 W C b / HBM
    dispatch  comm      exchange the whole [W x C] buffer             exchange((W - 1) C b)
    expert    compute   the expert on all W x C rows                  expert_curve(W C)
                        (counted expert: on the rows received          expert_curve(rows received))
    combine   comm      the same exchange back, from the expert out   exchange((W - 1) C b)
    merge     compute   out = x + sum_j g_j y[slot_j]                 (k + 2) T_m b / HBM

HBM is the profile's copy rate (it counts read + write, as the bytes above do); exchange() is the profile's
curve for the run's transport (`exchange_curves`; else `alltoall_curve`; else floor + NVLink latency +
bytes / NVLink bandwidth) at x = bytes one GPU sends to the others, the quantity it was measured at, on
buffers of the same [W x t] shape. With `symm` the
pack kernel stores straight into the peers' buffers: the exchange runs on the compute stream and includes
the pack (as the calibration measures it).

The two streams run the tasks in the order EpStep issues them: compute: pack_0 .. pack_{M-1}, then
expert_m once dispatch_m is done, for each m, then merge_m once combine_m is done, for each m; comm:
dispatch_m once pack_m is done, for each m, then combine_m once expert_m is done. The layer's time is the
makespan of that schedule. One layer timed alone is that makespan; the whole step is L of them plus the
copies the runtime makes at the start of a step (the input and every layer's routing), charged through HBM.

Overlap: while an expert and an exchange run at once both progress at a rate rho <= 1 (a fluid share of the
GPU: NCCL's kernels take SMs from the GEMM; copy engines take HBM bandwidth). rho comes from the profile's
`overlap_curve`, where the calibration times the expert on W x t rows and the exchange of t rows per peer
alone (e, x) and launched together (both): in this model both = min/rho + max - min with min, max = the
smaller and larger of e, x, so rho = min / (both - max + min), clipped to (0, 1]; it is interpolated in
log bytes, flat beyond the measured points. Without an overlap curve rho = 1 (perfect overlap), and
`FusedCharge.rho_source` says so.

Not charged (no calibrated quantity measures them): the route kernel and the routing index copy (a few µs
each), launch gaps inside the graph, and the skew with which ranks leave the barrier before a timed layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moeplace.costmodel.comm import curve_us
from moeplace.costmodel.compute import expert_us
from moeplace.costmodel.profile import HardwareProfile
from moeplace.placement.schema import ModelSpec

COMPUTE, COMM = 0, 1


@dataclass(frozen=True)
class Task:
    stream: int
    work_us: float
    after: tuple[int, ...]
    kind: str


@dataclass(frozen=True)
class FusedCharge:
    """One micro-batch's charged work (µs) and the rows and bytes behind it; identical on every rank."""

    world: int
    micro_batches: int
    capacity: int
    expert_rows: float
    exchange_bytes: float
    transport: str
    exchange_curve: str
    pack_us: float
    dispatch_us: float
    expert_us: float
    combine_us: float
    merge_us: float
    rho: float
    rho_source: str


def _hbm_us(profile: HardwareProfile, nbytes: float) -> float:
    return nbytes / (profile.hbm_tbps * 1e6)


def exchange_us(profile: HardwareProfile, nbytes: float, transport: str) -> tuple[float, str]:
    """(µs, which curve) of one exchange in which a GPU sends `nbytes` to the others over NVLink: the
    profile's curve for this transport, else its all-to-all curve, else floor + latency + bytes / bandwidth."""
    curve = profile.exchange_curves.get(transport) or profile.alltoall_curve
    name = f"exchange_curves[{transport}]" if profile.exchange_curves.get(transport) else "alltoall_curve"
    if nbytes <= 0:
        return 0.0, name
    if curve:
        return float(curve_us(tuple(sorted(curve, key=lambda p: p.x)), np.array(nbytes))), name
    return (profile.transfer_floor_us + profile.nvlink_latency_us + nbytes / (profile.nvlink_gbps * 1e3),
            "NVLink latency and bandwidth")


def pair_rate(expert_us_: float, exchange_us_: float, both_us: float) -> float:
    """rho of the fluid model from one pair measured alone and at once (1: perfect overlap)."""
    lo, hi = sorted((expert_us_, exchange_us_))
    extra = both_us - hi
    if extra <= 0:
        return 1.0
    return float(min(1.0, lo / (extra + lo)))


def overlap_rate(profile: HardwareProfile, nbytes: float, transport: str) -> tuple[float, str]:
    """(rho, where it comes from) for an exchange of `nbytes` per GPU in `transport` overlapping the expert."""
    pts = sorted((p for p in profile.overlap_curve if p.transport == transport), key=lambda p: p.x)
    if not pts:
        return 1.0, f"assumed 1 (perfect overlap): the profile has no overlap_curve for {transport}"
    xs = np.log(np.array([max(p.x, 1.0) for p in pts]))
    rs = np.array([pair_rate(p.expert_us, p.exchange_us, p.both_us) for p in pts])
    rho = float(np.interp(np.log(max(nbytes, 1.0)), xs, rs))
    return rho, f"overlap_curve ({pts[0].transport}, {len(pts)} points)"


def fused_charge(profile: HardwareProfile, model: ModelSpec, *, world: int, tokens_per_gpu: float,
                 micro_batches: int, capacity: int, transport: str, dtype_bytes: int,
                 expert_rows: float | None = None) -> FusedCharge:
    """expert_rows: the rows the expert runs on per micro-batch (the counted expert: the rows received);
    None: all W x C rows of the buffer."""
    W, M, C, k = world, micro_batches, capacity, model.top_k
    rows = float(W * C) if expert_rows is None else float(expert_rows)
    row_b = model.hidden * dtype_bytes
    Tm = tokens_per_gpu / M
    nbytes = float((W - 1) * C * row_b)
    x, curve = exchange_us(profile, nbytes, transport)
    rho, source = overlap_rate(profile, nbytes, transport) if transport != "symm" else (1.0, "symm never overlaps")
    pack = 0.0 if transport == "symm" else _hbm_us(profile, 2 * W * C * row_b)
    return FusedCharge(world=W, micro_batches=M, capacity=C, expert_rows=rows, exchange_bytes=nbytes,
                       transport=transport, exchange_curve=curve, pack_us=pack,
                       dispatch_us=x, expert_us=float(expert_us(profile, model, np.array(rows))),
                       combine_us=x, merge_us=_hbm_us(profile, (k + 2) * Tm * row_b), rho=rho, rho_source=source)


def layer_tasks(c: FusedCharge) -> list[Task]:
    """The tasks of one layer in EpStep's issue order (see the module docstring)."""
    M = c.micro_batches
    xstream = COMPUTE if c.transport == "symm" else COMM
    tasks: list[Task] = []
    add = lambda *a: tasks.append(Task(*a)) or len(tasks) - 1  # noqa: E731
    if xstream == COMM:
        packs = [add(COMPUTE, c.pack_us, (), "kernel") for _ in range(M)]
        disp = [add(COMM, c.dispatch_us, (packs[m],), "exchange") for m in range(M)]
    else:
        disp = [add(COMPUTE, c.dispatch_us, (), "exchange") for _ in range(M)]
    comb = []
    for m in range(M):
        e = add(COMPUTE, c.expert_us, (disp[m],), "expert")
        comb.append(add(xstream, c.combine_us, (e,), "exchange"))
    for m in range(M):
        add(COMPUTE, c.merge_us, (comb[m],), "kernel")
    return tasks


def makespan_us(tasks: list[Task], rho: float) -> float:
    """Two in-order streams with cross-stream waits; an expert and an exchange running at once both
    progress at rate rho, everything else at rate 1."""
    queues = {s: [i for i, t in enumerate(tasks) if t.stream == s] for s in (COMPUTE, COMM)}
    left = [t.work_us for t in tasks]
    done = [False] * len(tasks)
    now = 0.0
    while any(queues.values()):
        active = [q[0] for q in queues.values() if q and all(done[a] for a in tasks[q[0]].after)]
        assert active, "the fused step's schedule cannot deadlock"
        kinds = {tasks[i].kind for i in active}
        rate = rho if {"expert", "exchange"} <= kinds and len(active) == 2 else 1.0
        dt = min(left[i] for i in active) / rate
        now += dt
        for i in active:
            left[i] -= dt * rate
            if left[i] <= 1e-9:
                done[i] = True
                queues[tasks[i].stream].pop(0)
    return now


def layer_us(c: FusedCharge) -> float:
    return makespan_us(layer_tasks(c), c.rho)


def step_start_us(profile: HardwareProfile, model: ModelSpec, tokens_per_gpu: float, dtype_bytes: int) -> float:
    """The copies a timed whole step starts with (`FusedRun.load`): the input rows, and each layer's routing
    ids (int64) and gates (float32), read and written once."""
    T, k = tokens_per_gpu, model.top_k
    return _hbm_us(profile, 2 * T * model.hidden * dtype_bytes + model.num_moe_layers * 2 * T * k * (8 + 4))
