"""Is a plan's placement table consistent: every GPU used once, every expert placed, replicas numbered 0..r-1.

`plan_problems` lists every inconsistency that would make a launch file or a score wrong, one sentence each.
`emit` refuses a plan that has any and `check` reports them (through `moeplace.launch.layout`); `evaluate`,
`predict`, `topology loads` and the runtime's validation refuse one before rebuilding its problem
(`moeplace.evaluation`). It runs in time linear in the placements, whatever `num_gpus` a file claims.
"""

from __future__ import annotations

from collections import Counter

from moeplace.placement.plan import Plan
from moeplace.topologies.hostlist import host_problem


def plan_problems(plan: Plan) -> list[str]:
    """Every inconsistency of the placements, one sentence each; empty when none."""
    out: list[str] = []
    c, m = plan.cluster, plan.model
    W, G, N = plan.num_gpus, c.gpus_per_node, c.num_nodes
    if W != N * G:
        out.append(f"num_gpus is {W}, but the cluster has {N} nodes x {G} GPUs = {N * G}")
        W = N * G  # the cluster's count bounds the checks below (a claimed 10^12 would not)
    by_rank: dict[int, list] = {}
    for p in plan.placements:
        by_rank.setdefault(p.rank, []).append(p)
    inside = sorted(r for r in by_rank if r < W)
    if len(inside) < W:
        first = next((i for i, r in enumerate(inside) if i != r), len(inside))
        out.append(f"{W - len(inside)} GPUs have no placement row (first: rank {first})")
    extra = sorted(r for r in by_rank if r >= W)
    if extra:
        out.append(f"rank {extra[0]} is outside 0..{W - 1}")
    node_host: dict[int, str] = {}
    gpu_rank: dict[tuple[int, int], int] = {}
    seen: dict[tuple[int, int, int], int] = {}
    layers = m.moe_layer_numbers
    for rank in sorted(by_rank):
        rows = by_rank[rank]
        first = rows[0]
        for p in rows[1:]:
            if (p.node, p.host, p.local_gpu) != (first.node, first.host, first.local_gpu):
                out.append(f"rank {rank} is on {first.host} GPU {first.local_gpu} in one placement and on "
                           f"{p.host} GPU {p.local_gpu} in another")
        if first.node >= N:
            out.append(f"rank {rank} is on node {first.node}, the cluster has nodes 0..{N - 1}")
        if first.local_gpu >= G:
            out.append(f"rank {rank} uses local GPU {first.local_gpu}, a node has GPUs 0..{G - 1}")
        bad_host = host_problem(first.host)
        if bad_host:
            out.append(f"rank {rank}: {bad_host}")
        if node_host.setdefault(first.node, first.host) != first.host:
            out.append(f"node {first.node} is {node_host[first.node]} for one rank and {first.host} for rank {rank}")
        key = (first.node, first.local_gpu)
        if key in gpu_rank:
            out.append(f"ranks {gpu_rank[key]} and {rank} both use GPU {first.local_gpu} of {first.host}")
        gpu_rank.setdefault(key, rank)
        experts = [p for p in rows if p.expert is not None]
        if len(experts) != len(rows) and len(rows) > 1:
            out.append(f"rank {rank} has an idle-GPU row beside expert rows")
        if len(experts) > c.experts_per_gpu:
            out.append(f"rank {rank} holds {len(experts)} experts, a GPU has {c.experts_per_gpu} expert slots")
        for p in experts:
            if p.moe_layer is None or not 0 <= p.moe_layer < m.num_moe_layers or p.expert >= m.num_experts:
                out.append(f"rank {rank}: expert {p.expert} of MoE layer {p.moe_layer} is not in the model")
                continue
            if p.layer != layers[p.moe_layer]:
                out.append(f"rank {rank}: MoE layer {p.moe_layer} is model layer {layers[p.moe_layer]}, not {p.layer}")
            item = (p.moe_layer, p.expert, p.replica or 0)
            if item in seen:
                out.append(f"expert {p.expert} of layer {p.layer} replica {p.replica} is on ranks {seen[item]} "
                           f"and {rank}")
            seen.setdefault(item, rank)
    hosts = [node_host.get(n) for n in range(N)]
    uses = Counter(h for h in hosts if h is not None)
    dup = sorted(h for h, n in uses.items() if n > 1)
    if dup:
        out.append(f"host {dup[0]} names {uses[dup[0]]} different nodes")
    placed = {(ml, e) for ml, e, _ in seen}
    unplaced = [(ml, e) for ml in range(m.num_moe_layers) for e in range(m.num_experts) if (ml, e) not in placed]
    if unplaced:
        ml, e = unplaced[0]
        out.append(f"expert {e} of layer {layers[ml]} is on no GPU ({len(unplaced)} experts unplaced)")
    out += _replica_gaps(seen, layers)
    return out


def _replica_gaps(seen: dict[tuple[int, int, int], int], layers: tuple[int, ...]) -> list[str]:
    """An expert's copies must be replicas 0..r-1: `replica: 5` alone would launch five phantom copies."""
    copies: dict[tuple[int, int], list[int]] = {}
    for ml, e, r in seen:
        copies.setdefault((ml, e), []).append(r)
    for (ml, e), reps in sorted(copies.items()):
        reps.sort()
        if reps != list(range(len(reps))):
            gap = next(i for i, r in enumerate(reps + [-1]) if r != i)
            return [f"expert {e} of layer {layers[ml]} has replicas {_short(reps)} but no replica {gap} "
                    f"(replicas are numbered 0..r-1)"]
    return []


def _short(xs: list[int]) -> str:
    return ", ".join(map(str, xs[:6])) + (", ..." if len(xs) > 6 else "")
