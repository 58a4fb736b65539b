"""Predicted against measured: the cost model with a (calibrated) profile against a run's `measured.json`.

The runtime executes the MoE layers alone (no attention, no dense layers), so the prediction is the cost
model's own terms for exactly that work, composed the way its ep/chain timing composes them:

    experts   C_l = max over GPUs of sum of its layer-l experts' `expert_us(profile, tokens x load share)`
    transfers X_l = sum of the layer's transfer steps `step_us(flow_transfers(plan), Rates.of(profile))`
              (ep: dispatch + combine of layer l; chain: the forward into layer l + its combine)
    layer     one micro-batch: C_l + X_l; two: C_h + X_h + max(C_h, X_h) at half the tokens (the overlap
              the fused step runs)
    step      the sum over layers (the runtime's whole step runs layer after layer)

Errors are (predicted - measured) / measured; the headline is the median and the worst |error|.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moeplace.costmodel.comm import Rates, step_us
from moeplace.costmodel.compute import expert_us
from moeplace.costmodel.profile import HardwareProfile
from moeplace.costmodel.transfers import flow_transfers
from moeplace.errors import InputError
from moeplace.evaluation import PlanProblem, load_plan_problem
from moeplace.runtime.measured import Measured


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


def _layer_terms(problem, stats, item_gpu, profile: HardwareProfile, tokens: float) -> tuple[np.ndarray, np.ndarray]:
    """(experts C_L, transfers X_L) in microseconds for one batch of `tokens` tokens."""
    model = problem.model
    L, E = model.num_moe_layers, model.num_experts
    share = stats.load_LE / max(stats.num_tokens, 1)
    t_LE = expert_us(profile, model, tokens * share)
    per = np.zeros((problem.num_gpus, L))
    np.add.at(per, (np.asarray(item_gpu).reshape(L, E), np.repeat(np.arange(L)[:, None], E, axis=1)), t_LE)
    tr = flow_transfers(problem, item_gpu)
    x_SL = step_us(tr, Rates.of(profile, problem), tokens)
    if problem.flow == "chain" and "forward" in tr.steps:
        s_fwd = tr.steps.index("forward")
        fwd = x_SL[s_fwd]
        x_L = x_SL.sum(axis=0) - fwd + np.concatenate([[0.0], fwd[:-1]])
    else:
        x_L = x_SL.sum(axis=0)
    return per.max(axis=0), x_L


def predict(pp: PlanProblem, profile: HardwareProfile, tokens: float, micro_batches: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(layer_us [L], experts [L], transfers [L]) as the runtime runs them with `micro_batches`."""
    C, X = _layer_terms(pp.problem, pp.stats, pp.item_gpu_I, profile, tokens)
    if micro_batches >= 2:
        Ch, Xh = _layer_terms(pp.problem, pp.stats, pp.item_gpu_I, profile, tokens / micro_batches)
        layer = Ch + Xh + (micro_batches - 1) * np.maximum(Ch, Xh)
    else:
        layer = C + X
    return layer, C, X


def compare(pp: PlanProblem, measured: Measured, profile: HardwareProfile) -> list[Row]:
    plan = pp.plan
    if plan.model.num_moe_layers != len(measured.layers) or plan.num_gpus != measured.world_size:
        raise InputError(f"measured.json is a run of {measured.world_size} GPUs and {len(measured.layers)} MoE layers; "
                         f"the plan has {plan.num_gpus} GPUs and {plan.model.num_moe_layers}", source=str(pp.path))
    layer, C, X = predict(pp, profile, measured.tokens_per_step, measured.micro_batches)
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
