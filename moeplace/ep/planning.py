"""`moeplace solve --flow ep --redundant-experts R`: an engine EP layout with redundant experts, as a plan.

The layout is the engines' (docs/engines.md): every GPU of the W-GPU cluster holds s = (E + R) / W slots of
every MoE layer, so (E + R) must be a multiple of W; the GPU then holds s x MoE layers experts (the plan's
experts_per_gpu). `moeplace.rebalance` decides which experts get copies and where: EPLB's balance, then
swaps that cut co-activation across nodes (with the statistics' token-path sample when there is one) under
the busiest GPU's load. The flow is `ep` with tokens split evenly over an expert's copies (vLLM's rule;
`moeplace.placement.replication.expand_traffic`), so the objective stays the one `moeplace evaluate` computes.
No lower bound is proven for this layout: the plan's bound is 0.

Memory: the expert copies alone, s x MoE layers x one expert's bytes, must fit the GPU (`gpu.memory_gb`);
`moeplace predict` checks the whole GPU (attention, KV cache, buffers) with the cost model.
`--redundant-experts auto` takes the smallest R (of those that keep (E + R) divisible by W, up to E, and fit
memory) whose busiest-GPU time, averaged over the layers, is within 2% of the lowest any such R reaches: the
slowest rank sets the pace of an EP step, and every further copy costs memory and a weight transfer. The
phase (`--phase`, with that phase's statistics in `--stats`) sets the time model:
  prefill  compute-bound: a GPU's time is its tokens (EPLB's load model);
  decode   small batches (DECODE_TOKENS_PER_GPU tokens per GPU and step): an expert copy that gets any tokens
           costs at least its weight-read floor, which the brief's H200 measurements put at FLOOR_TOKENS tokens
           (a SwiGLU expert takes 40-50 us from 16 to 256 tokens); a GPU's time is the sum over its slots of
           max(FLOOR_TOKENS, tokens) x the chance the slot is used. Copies that only split sub-floor batches buy
           nothing, so decode plans get fewer redundant experts.
Step 2's cap is the busiest GPU's tokens in both phases (the tighter of the two).
"""

from __future__ import annotations

import time

import numpy as np

from moeplace.errors import InputError
from moeplace.ep.eplb import gpu_load_LG
from moeplace.ep.rebalance import best_balance, rebalance
from moeplace.placement.replication import item_table
from moeplace.topologies.base import count

AUTO_TOLERANCE = 0.02
DECODE_TOKENS_PER_GPU = 128
FLOOR_TOKENS = 256
PHASES = ("prefill", "decode")


def expert_bytes(model) -> int:
    from moeplace.costmodel.compute import expert_shape

    return int(expert_shape(model).weight_bytes)


def valid_redundant(num_experts: int, num_gpus: int, limit: int) -> list[int]:
    return [r for r in range(0, limit + 1) if (num_experts + r) % num_gpus == 0]


def check_memory(model, cluster, slots_per_gpu: int) -> None:
    need = slots_per_gpu * model.num_moe_layers * expert_bytes(model) / 1e9
    if need > cluster.gpu.memory_gb:
        raise InputError(f"{count(slots_per_gpu, 'slot')} x {model.num_moe_layers} MoE layers x "
                         f"{expert_bytes(model) / 1e9:.3f} GB per expert = {need:.1f} GB of experts per GPU, more "
                         f"than its {cluster.gpu.memory_gb:g} GB", field="--redundant-experts")


def phase_time(weight_LE: np.ndarray, phy2log_LP: np.ndarray, num_gpus: int, top_k: int, phase: str) -> float:
    """The busiest GPU's time in token units, averaged over layers, under the phase's model (module docstring)."""
    if phase == "prefill":
        return float(gpu_load_LG(weight_LE, phy2log_LP, num_gpus).max(1).mean())
    L, E = weight_LE.shape
    cnt = np.stack([np.bincount(row, minlength=E) for row in phy2log_LP])
    share = weight_LE / weight_LE.sum(1, keepdims=True) / np.maximum(cnt, 1)          # of a layer's choices
    step = DECODE_TOKENS_PER_GPU * num_gpus * top_k
    n = np.take_along_axis(share, phy2log_LP, axis=1) * step                           # tokens per slot
    used = 1.0 - np.exp(-n)                                                            # P(slot gets a token)
    t = np.maximum(FLOOR_TOKENS * used, n)
    return float(t.reshape(L, num_gpus, -1).sum(-1).max(1).mean())


def resolve_redundant(value, model, cluster, weight_LE: np.ndarray, phase: str = "prefill") -> int:
    """R from `--redundant-experts` (an integer or "auto"), checked against the layout and memory."""
    E, W = model.num_experts, cluster.num_gpus
    if str(value) == "auto":
        fits = [r for r in valid_redundant(E, W, E)
                if (E + r) // W * model.num_moe_layers * expert_bytes(model) <= cluster.gpu.memory_gb * 1e9]
        if not fits:
            raise InputError(f"no R in 0..{E} makes {E} + R a multiple of {W} GPUs with the experts in memory",
                             field="--redundant-experts")
        worst = [phase_time(weight_LE, best_balance(weight_LE, E + r, 1, 1, W), W, model.top_k, phase)
                 for r in fits]
        best = min(worst)
        return next(r for r, x in zip(fits, worst) if x <= best * (1 + AUTO_TOLERANCE))
    try:
        R = int(value)
    except ValueError:
        raise InputError(f"must be an integer or auto, got {value!r}", field="--redundant-experts") from None
    if R < 0:
        raise InputError(f"must be >= 0, got {R}", field="--redundant-experts")
    if (E + R) % W:
        near = [r for r in valid_redundant(E, W, R + W) if r >= R][:1]
        raise InputError(f"{E} experts + {R} redundant = {E + R} slots per layer is not a multiple of the EP size "
                         f"{W} GPUs (every GPU holds the same number of slots of every layer); try "
                         f"--redundant-experts {near[0]}", field="--redundant-experts")
    check_memory(model, cluster, (E + R) // W)
    return R


def item_gpu_of(phy2log_LP: np.ndarray, copies_LE: np.ndarray, num_gpus: int) -> np.ndarray:
    """int [items]: the GPU of every item (item numbering of `replication.item_table`)."""
    L, E = copies_LE.shape
    base, replica = item_table(copies_LE)
    index = {(int(b), int(r)): i for i, (b, r) in enumerate(zip(base.tolist(), replica.tolist()))}
    per_gpu = phy2log_LP.shape[1] // num_gpus
    out = np.empty(base.size, dtype=np.int64)
    for li in range(L):
        seen = np.zeros(E, dtype=np.int64)
        for p, e in enumerate(phy2log_LP[li].tolist()):
            out[index[(li * E + e, int(seen[e]))]] = p // per_gpu
            seen[e] += 1
    return out


def plan_ep(req):
    """(problem, stats, SolveResult) for a PlanRequest with redundant_experts set."""
    from moeplace.placement.builder import build_fabric, build_problem, default_tier_costs, load_stats
    from moeplace.placement.cost import evaluate
    from moeplace.solvers.base import SolveResult

    from moeplace.placement.flows import get_flow

    if not get_flow(req.flow).engine_layout:
        raise InputError(f"redundant experts are an expert-parallel layout: use --flow ep (got --flow {req.flow})",
                         field="--redundant-experts")
    if req.replicas:
        raise InputError("--replicas (copies on spare GPUs) and --redundant-experts exclude each other",
                         field="--redundant-experts")
    start = time.perf_counter()
    model, cluster = req.model, req.cluster
    fabric = build_fabric(cluster, req.topology)
    stats = load_stats(req.stats_ref, model, seed=req.seed, synth=req.synth)
    weight = stats.load_LE.astype(np.float64)
    phase = req.phase or "prefill"
    if phase not in PHASES:
        raise InputError(f"must be prefill or decode, got {phase!r}", field="--phase")
    R = resolve_redundant(req.redundant_experts, model, cluster, weight, phase)
    W, N, E = cluster.num_gpus, cluster.num_nodes, model.num_experts
    s = (E + R) // W
    cluster = cluster.model_copy(update={"experts_per_gpu": s * model.num_moe_layers})
    co = stats.paths_TLK if stats.has("paths") else stats.coact_LEE
    phy2log, _, logcnt = rebalance(weight, E + R, 1, N, W, coact=co, fabric=fabric.node_hops_NN, seed=req.seed)
    migration = None
    if req.replan_from:
        phy2log, migration = _replan(req, np.asarray(phy2log), W, cluster.gpus_per_node, expert_bytes(model))
        logcnt = np.stack([np.bincount(row, minlength=E) for row in phy2log])
    costs = default_tier_costs(cluster, fabric)
    if req.tier_costs:
        try:
            costs = costs.with_overrides(**req.tier_costs)
        except ValueError as exc:
            raise InputError(str(exc), field="--tier-cost") from None
    problem = build_problem(model, cluster, stats, fabric=fabric, flow="ep", dedup=req.dedup, tier_costs=costs,
                            stats_source=req.stats_ref or "synthetic statistics", copies_LE=np.asarray(logcnt))
    item_gpu = item_gpu_of(np.asarray(phy2log), np.asarray(logcnt), W)
    cost = evaluate(problem, item_gpu)
    load = gpu_load_LG(weight, np.asarray(phy2log), W)
    details = {"phase": phase, "redundant_experts": R, "slots_per_gpu": s, "num_slots": E + R,
               "gpu_max_over_mean": round(float((load.max(1) / load.mean(1)).mean()), 6),
               "expert_gb_per_gpu": round(s * model.num_moe_layers * expert_bytes(model) / 1e9, 3)}
    if migration is not None:
        details["migration"] = migration
    result = SolveResult(solver="ep-rebalance", item_gpu_I=item_gpu, objective=float(cost.objective), bound=0.0,
                         status="feasible", wall_time_s=time.perf_counter() - start, work=0.0,
                         stop_reason="converged", details=details)
    return problem, stats, result


def _replan(req, new_LP: np.ndarray, num_gpus: int, gpus_per_node: int, nbytes: int):
    """The new layout cut to the move budget, and the migration from the plan in service."""
    from moeplace.ep.migrate import migration
    from moeplace.evaluation import resolve_plan_path
    from moeplace.launch.engines import ep_layout
    from moeplace.launch.layout import plan_layout
    from moeplace.placement.plan import load_plan

    path = resolve_plan_path(req.replan_from)
    old = ep_layout(plan_layout(load_plan(path)))
    if isinstance(old, str):
        raise InputError(f"the plan in service has no EP layout: {old}", source=str(path), field="--from")
    if old.phy2log_LP.shape != new_LP.shape:
        raise InputError(f"the plan in service has {old.phy2log_LP.shape[1]} slots per layer on "
                         f"{old.phy2log_LP.shape[1] // old.slots_per_rank} GPUs, the new one {new_LP.shape[1]} on "
                         f"{num_gpus}", source=str(path), field="--from")
    out, moves = migration(old.phy2log_LP, new_LP, num_gpus, gpus_per_node, nbytes, max_moves=req.max_moves)
    return out, {"num_moves": len(moves), "bytes_moved": sum(m["bytes"] for m in moves),
                 "bytes_across_nodes": sum(m["bytes"] for m in moves if not m["nvlink"]), "moves": moves}
