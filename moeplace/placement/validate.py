"""Feasibility of an assignment, for any solver: every item on a real GPU, capacities and balance kept."""

from __future__ import annotations

import numpy as np

from moeplace.placement.problem import Problem


def violations(problem: Problem, item_gpu_I: np.ndarray) -> list[str]:
    """Every broken constraint, as a sentence with the numbers; empty when the assignment is feasible."""
    out: list[str] = []
    a = np.asarray(item_gpu_I)
    if a.shape != (problem.num_items,):
        return [f"assignment has shape {a.shape}, expected ({problem.num_items},)"]
    if not np.issubdtype(a.dtype, np.integer):
        return [f"assignment has dtype {a.dtype}, expected integers"]
    bad = np.flatnonzero((a < 0) | (a >= problem.num_gpus))
    if bad.size:
        return [f"item {int(bad[0])} on GPU {int(a[bad[0]])}, outside 0..{problem.num_gpus - 1}"]
    per_gpu = np.bincount(a, minlength=problem.num_gpus)
    over = np.flatnonzero(per_gpu > problem.experts_per_gpu)
    if over.size:
        g = int(over[0])
        out.append(f"GPU {g} holds {int(per_gpu[g])} experts, capacity {problem.experts_per_gpu} "
                   f"({over.size} GPUs over capacity)")
    if problem.balance_per_layer:
        cap = problem.layer_cap_per_gpu
        per = np.zeros((problem.num_gpus, problem.model.num_moe_layers), dtype=np.int64)
        np.add.at(per, (a, problem.item_layer_I), 1)
        over = np.argwhere(per > cap)
        if over.size:
            g, l = (int(x) for x in over[0])
            out.append(f"GPU {g} holds {int(per[g, l])} experts of MoE layer {l}, balance allows {cap}")
    return out


def is_feasible(problem: Problem, item_gpu_I: np.ndarray) -> bool:
    return not violations(problem, item_gpu_I)
