"""The solver registry and the one front door."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from moeplace.errors import InputError
from moeplace.placement.cost import objective as compute_objective
from moeplace.placement.problem import Problem
from moeplace.placement.validate import violations
from moeplace.solvers.base import EXACT_TIME_LIMIT_S, SAFETY_NET_S, STATUS_OPTIMAL, SolveConfig, SolveResult
from moeplace.solvers.bounds import combinatorial_bound
from moeplace.solvers.lp_bound import default_window_bound, strong_bound, window_lp_helps
from moeplace.solvers.node_lp import node_tier_bound

_SOLVERS: dict[str, tuple[Callable[..., SolveResult], str]] = {}
_REPLANNING: set[str] = set()
_WORK_BUDGETED: set[str] = set()


def register_solver(name: str, summary: str, *, replanning: bool = False, work_budgeted: bool = False
                    ) -> Callable[[Callable[..., SolveResult]], Callable[..., SolveResult]]:
    """Register a backend; `replanning=True` if it honours SolveConfig.origin_gpu_I / max_moves / move_cost,
    `work_budgeted=True` if it stops on SolveConfig.work_limit (its own default when None), the wall clock
    being only a safety net."""
    def deco(fn: Callable[..., SolveResult]) -> Callable[..., SolveResult]:
        if name in _SOLVERS:
            raise ValueError(f"solver {name!r} is already registered")
        _SOLVERS[name] = (fn, summary)
        if replanning:
            _REPLANNING.add(name)
        if work_budgeted:
            _WORK_BUDGETED.add(name)
        return fn

    return deco


_NEEDS_ORTOOLS = ("cpsat", "ilp", "ilp-highs")


def _load_backends() -> None:
    """Register the backends; the exact ones need OR-Tools, which a runtime-only host (a GPU image with
    torch but no solver stack) may lack: the others still load there."""
    from moeplace.solvers import greedy, lns, lns_lp  # noqa: F401  (register themselves)

    try:
        from moeplace.solvers import cpsat, ilp  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("ortools"):
            raise


def available_solvers() -> dict[str, str]:
    _load_backends()
    return {name: summary for name, (_, summary) in _SOLVERS.items()}


def default_time_limit_s(name: str) -> float:
    """The wall-clock limit a solver gets when none is given: a 600 s safety net for the work-budgeted
    searches (their plans then never depend on the machine's speed), 60 s for the exact backends."""
    _load_backends()
    return SAFETY_NET_S if name in _WORK_BUDGETED else EXACT_TIME_LIMIT_S


def get_solver(name: str) -> Callable[..., SolveResult]:
    _load_backends()
    if name not in _SOLVERS and name in _NEEDS_ORTOOLS:
        raise InputError(f"solver {name!r} needs OR-Tools, which is not installed: pip install 'ortools>=9.10'",
                         field="--solver")
    if name not in _SOLVERS:
        raise InputError(f"unknown solver {name!r} (known: {', '.join(_SOLVERS)})", field="--solver")
    return _SOLVERS[name][0]


def one_blas_thread():
    """The searches call BLAS on small matrices thousands of times: extra BLAS threads only spin (a quarter
    more CPU on 2 cores, measured) and make float sums depend on the core count; so the backends run on one."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def solve(problem: Problem, config: SolveConfig | None = None, *, solver: str = "greedy",
          hint: np.ndarray | None = None) -> SolveResult:
    """Run a backend, then check its plan and recompute its objective and bound with the shared modules."""
    config = config or SolveConfig(time_limit_s=default_time_limit_s(solver))
    backend = get_solver(solver)
    if hint is not None:
        broken = violations(problem, hint)
        if broken:
            raise InputError(f"hint is not a feasible placement: {broken[0]}", field="hint")
    if config.origin_gpu_I is not None:
        if solver not in _REPLANNING:
            raise InputError(f"solver {solver!r} cannot re-plan (solvers that can: {', '.join(sorted(_REPLANNING))})",
                             field="--solver")
        broken = violations(problem, config.origin_gpu_I)
        if broken:
            raise InputError(f"the plan to re-plan from does not fit this problem: {broken[0]}", field="--from")
        if config.max_moves is not None and config.max_moves < 0:
            raise InputError(f"must be >= 0, got {config.max_moves}", field="--max-moves")
        if config.move_cost < 0:
            raise InputError(f"must be >= 0, got {config.move_cost}", field="--move-cost")
    with one_blas_thread():
        result = backend(problem, config, hint)
    broken = violations(problem, result.item_gpu_I)
    assert not broken, f"solver {solver!r} returned an infeasible plan: {broken[0]}"
    obj = compute_objective(problem, result.item_gpu_I)
    assert abs(obj - result.objective) <= 1e-6 * max(1.0, abs(obj)), (obj, result.objective)
    if config.origin_gpu_I is not None and config.max_moves is not None:
        moved = int((result.item_gpu_I != config.origin_gpu_I).sum())
        assert moved <= config.max_moves, f"solver {solver!r} moved {moved} experts, limit {config.max_moves}"
    with one_blas_thread():  # the bounds' float sums too: the same on 1 core or 2
        bound, result = _proven_bound(problem, config, result, obj, solver)
    assert bound <= obj * (1 + 1e-9) + 1e-9, f"bound {bound} above objective {obj}: the bound is wrong"
    bound = min(bound, obj)
    status = STATUS_OPTIMAL if obj - bound <= 1e-9 * max(1.0, obj) else result.status
    return dataclasses.replace(result, objective=obj, bound=bound, status=status)


def _proven_bound(problem: Problem, config: SolveConfig, result: SolveResult, obj: float,
                  solver: str) -> tuple[float, SolveResult]:
    """The best bound the front door proves for this plan (the backend's, the combinatorial, the node LP with
    the domain profiles, the window LP where it helps, and `--strong-bound`'s), and the result with its
    method in `details["bound_method"]` and, where a stage's wall-clock safety net cut it short (so that the
    bound depends on the machine's speed), `details["bound_clock"]` True."""
    comb = combinatorial_bound(problem)
    bound = max(result.bound, comb)
    method = "combinatorial" if comb >= result.bound else f"{solver} (its own)"
    if config.progress is not None and bound < obj:
        stages = "node LP, domain profiles" + (", window LP" if window_lp_helps(problem) else "")
        config.progress({"evaluations": result.work, "objective": obj, "bound": bound,
                         "phase": f"search done; proving the lower bound ({stages})"})
    default_value, default_method, node_details = node_tier_bound(problem) if bound < obj else (bound, "", {})
    clock = bool(node_details.get("clock"))
    if default_value > bound:
        bound, method = default_value, default_method
    windowed = default_window_bound(problem) if bound < obj else None  # where it helps (window_lp_helps)
    clock = clock or bool(windowed is not None and windowed.details["clock"])
    if windowed is not None and windowed.value > bound:
        bound, method = windowed.value, windowed.method
    result = dataclasses.replace(result, details={**result.details, "bound_method": method, "bound_clock": clock})
    if config.strong_bound_s > 0:
        if config.progress is not None:
            config.progress({"evaluations": result.work, "objective": obj, "bound": bound,
                             "phase": f"bound {bound:,.0f}; proving a stronger one "
                                      f"(--strong-bound {config.strong_bound_s:g} s)"})
        found = strong_bound(problem, config.strong_bound_s, config.workers)
        if found.value > bound:
            bound, method = found.value, found.method
        clock = clock or bool(found.details.get("clock"))
        result = dataclasses.replace(result, details={**result.details, "bound_method": method, "bound_clock": clock,
                                                      "bound_time_s": round(found.wall_time_s, 3)})
    return bound, result
