"""Predicted against measured: the cost model with a (calibrated) profile against a run's `measured.json`.

The runtime executes the MoE layers alone (no attention, no dense layers), so the prediction charges the
work the run's engine executes, with the profile's measured curves:

epstep (the fused step, `measured.engine == "epstep"`): static [W x C] buffers, C rows per peer per
    micro-batch (`capacity_rows_per_peer`; in files written before that field, the C the runtime counted
    into `bytes_per_step`, 2 x M x C rows per peer per layer). Every rank runs the expert on all W x C rows
    and exchanges whole buffers, padding included; per micro-batch pack, dispatch, expert, combine and merge
    are scheduled on the compute and communication streams in the order the step issues them, with the
    calibrated overlap rate where an expert and an exchange run at once (`costmodel.fusedstep`). A layer
    timed alone is that schedule's makespan; the whole step is the layers plus the copies it starts with.
generic (per-peer send/receive of exactly the routed rows): the cost model's own terms for that work,
    composed as its ep/chain timing composes them:

    experts   C_l = max over GPUs of sum of its layer-l experts' `expert_us(profile, n)`, n = tokens x load
              share, rounded up to the runner's CUDA-graph bucket (a power of two >= 16) when graphs ran
    transfers X_l = sum of the layer's transfer steps `step_us(flow_transfers(plan), Rates.of(profile))`
              (ep: dispatch + combine of layer l; chain: the forward into layer l + its combine)
    layer     one micro-batch: C_l + X_l; M: C_h + X_h + (M - 1) max(C_h, X_h) at tokens / M
    step      the sum over layers

    An epstep file without a capacity (none recorded, no bytes to derive it from) is predicted this way too.

Errors are (predicted - measured) / measured; the headline is the median and the worst |error|.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moeplace.costmodel.comm import Rates, step_us
from moeplace.costmodel.compute import expert_us
from moeplace.costmodel.fusedstep import FusedCharge, fused_charge, layer_us, step_start_us
from moeplace.costmodel.profile import HardwareProfile
from moeplace.costmodel.transfers import flow_transfers
from moeplace.errors import InputError
from moeplace.evaluation import PlanProblem, load_plan_problem
from moeplace.runmodel.measured import Measured

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
MIN_BUCKET = 16  # runner.MIN_BUCKET (that module needs torch)


@dataclass(frozen=True)
class Row:
    what: str
    measured_us: float
    predicted_us: float
    expert_us: float
    transfer_us: float

    @property
    def error(self) -> float:
        return (self.predicted_us - self.measured_us) / self.measured_us


def graph_bucket(n: np.ndarray) -> np.ndarray:
    """Rows the generic engine's expert runs on under CUDA graphs: the next power of two >= 16 (0 stays 0)."""
    n = np.asarray(n, dtype=np.float64)
    b = np.maximum(MIN_BUCKET, 2.0 ** np.ceil(np.log2(np.maximum(np.ceil(n), 1.0))))
    return np.where(n > 0, b, 0.0)


def executed_capacity(m: Measured) -> int | None:
    """C, the rows per peer per micro-batch of the fused step's buffers; None for the generic engine.

    Files written before `capacity_rows_per_peer`: the runtime counted 2 x M x C rows per peer per layer
    into `bytes_per_step` (dispatch and combine of every micro-batch, padding included), so C is those
    bytes over W (W - 1) L 2 M row bytes; None when that is not a whole number (nothing to derive it from)."""
    if m.engine != "epstep":
        return None
    if m.capacity_rows_per_peer is not None:
        return m.capacity_rows_per_peer
    W, M, L = m.world_size, m.micro_batches, len(m.layers)
    row_b = int(m.model.get("hidden", 0)) * DTYPE_BYTES.get(m.dtype, 0)
    denom = W * (W - 1) * L * 2 * M * row_b
    total = float(sum(m.bytes_per_step.values()))
    if denom <= 0 or total <= 0:
        return None
    c = total / denom
    return int(round(c)) if abs(c - round(c)) < 1e-6 * max(c, 1.0) else None


def _layer_terms(problem, stats, item_gpu, profile: HardwareProfile, tokens: float, graphs: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(experts C_L, transfers X_L) in microseconds for one batch of `tokens` tokens (generic engine)."""
    model = problem.model
    L, E = model.num_moe_layers, model.num_experts
    share = stats.load_LE / max(stats.num_tokens, 1)
    rows = tokens * share
    t_LE = expert_us(profile, model, graph_bucket(rows) if graphs else rows)
    per = np.zeros((problem.num_gpus, L))
    np.add.at(per, (np.asarray(item_gpu).reshape(L, E), np.repeat(np.arange(L)[:, None], E, axis=1)), t_LE)
    tr = flow_transfers(problem, item_gpu)
    x_SL = step_us(tr, Rates.of(profile, problem), tokens)
    if "forward" in tr.steps:  # the forward of layer l overlaps layer l+1
        s_fwd = tr.steps.index("forward")
        fwd = x_SL[s_fwd]
        x_L = x_SL.sum(axis=0) - fwd + np.concatenate([[0.0], fwd[:-1]])
    else:
        x_L = x_SL.sum(axis=0)
    return per.max(axis=0), x_L


def predict(pp: PlanProblem, profile: HardwareProfile, tokens: float, micro_batches: int, graphs: bool = False
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generic engine: (layer_us [L], experts [L], transfers [L]) as it runs them with `micro_batches`."""
    C, X = _layer_terms(pp.problem, pp.stats, pp.item_gpu_I, profile, tokens, graphs)
    if micro_batches >= 2:
        Ch, Xh = _layer_terms(pp.problem, pp.stats, pp.item_gpu_I, profile, tokens / micro_batches, graphs)
        layer = Ch + Xh + (micro_batches - 1) * np.maximum(Ch, Xh)
    else:
        layer = C + X
    return layer, C, X


def fused_prediction(pp: PlanProblem, profile: HardwareProfile, measured: Measured, capacity: int
                     ) -> tuple[FusedCharge, float, float]:
    """(charge per micro-batch, one layer alone µs, whole step µs) for a fused-step run."""
    model = pp.plan.model
    b = DTYPE_BYTES.get(measured.dtype, model.dtype_bytes)
    c = fused_charge(profile, model, world=measured.world_size, tokens_per_gpu=measured.tokens_per_gpu,
                     micro_batches=measured.micro_batches, capacity=capacity, transport=measured.transport,
                     dtype_bytes=b, expert_rows=measured.expert_rows_per_microbatch)
    one = layer_us(c)
    return c, one, model.num_moe_layers * one + step_start_us(profile, model, measured.tokens_per_gpu, b)


def compare(pp: PlanProblem, measured: Measured, profile: HardwareProfile) -> list[Row]:
    plan = pp.plan
    if plan.model.num_moe_layers != len(measured.layers) or plan.num_gpus != measured.world_size:
        raise InputError(f"measured.json is a run of {measured.world_size} GPUs and {len(measured.layers)} MoE layers; "
                         f"the plan has {plan.num_gpus} GPUs and {plan.model.num_moe_layers}", source=str(pp.path))
    cap = executed_capacity(measured)
    if cap is not None:
        c, one, step = fused_prediction(pp, profile, measured, cap)
        M = c.micro_batches
        ex, xf = M * c.expert_us, M * (c.dispatch_us + c.combine_us)
        rows = [Row(f"MoE layer {m.layer}", m.us.median, one, ex, xf) for m in measured.layers]
        rows.append(Row("whole step", measured.step_us.median, step, len(rows) * ex, len(rows) * xf))
        return rows
    graphs = measured.cuda_graphs and measured.engine == "generic"
    layer, C, X = predict(pp, profile, measured.tokens_per_step, measured.micro_batches, graphs)
    rows = [Row(f"MoE layer {m.layer}", m.us.median, float(layer[m.moe_layer]), float(C[m.moe_layer]),
                float(X[m.moe_layer])) for m in measured.layers]
    rows.append(Row("whole step", measured.step_us.median, float(layer.sum()), float(C.sum()), float(X.sum())))
    return rows


def headline(rows: list[Row]) -> dict[str, float]:
    errs = np.abs([r.error for r in rows])
    return {"median_abs_error": float(np.median(errs)), "worst_abs_error": float(errs.max()), "points": len(rows)}


def load_run_plan(path: str | Path) -> PlanProblem:
    """DIR holding plan.json (a plan directory, or a launch directory emitted beside it), rebuilt as its problem
    by `moeplace.evaluation.load_plan_problem` on the plan's own statistics."""
    p = Path(path)
    if p.is_dir() and not (p / "plan.json").is_file() and (p.parent / "plan.json").is_file():
        p = p.parent
    return load_plan_problem(p)
