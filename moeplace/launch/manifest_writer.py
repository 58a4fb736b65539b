"""`manifest.json` from a plan: ranks with their experts, rendezvous, buffer sizes, the routing to replay.

Buffer sizing: a step pushes `tokens_per_step` tokens through every MoE layer; each chooses `top_k` of the
layer's `num_experts` experts, so a rank holding `s` experts of one layer receives on average
`tokens_per_step x top_k x s / num_experts` tokens of that layer per step. `capacity_tokens_per_peer` is that
mean for the fullest (rank, layer), times `capacity_factor`, rounded up: no single peer can send a rank more
than the rank receives in all, so it bounds every peer's share unless the rank's own load exceeds the factor.
"""

from __future__ import annotations

import math

from moeplace.errors import InputError
from moeplace.fileio import dumps_json
from moeplace.launch.layout import Layout
from moeplace.launch.manifest import (
    Buffers,
    ExpertRef,
    Manifest,
    RankEntry,
    RoutingSource,
    trace_file_problem,
)
from moeplace.launch.options import EmitOptions

_KNOBS = ("skew", "coact", "affinity", "cluster_size", "num_tokens")


def max_layer_slots_per_rank(layout: Layout) -> int:
    """The most experts of one MoE layer that any rank holds (1 for one expert per GPU)."""
    best = 1
    for row in layout.rows:
        counts: dict[int, int] = {}
        for s in row.slots:
            counts[s.moe_layer] = counts.get(s.moe_layer, 0) + 1
        best = max(best, *counts.values()) if counts else best
    return best


def buffers(layout: Layout, options: EmitOptions) -> Buffers:
    m = layout.plan.model
    mean = options.tokens_per_step * m.top_k * max_layer_slots_per_rank(layout) / m.num_experts
    return Buffers(tokens_per_step=options.tokens_per_step,
                   capacity_tokens_per_peer=max(1, math.ceil(options.capacity_factor * mean)),
                   micro_batches=options.micro_batches)


def routing_source(layout: Layout, options: EmitOptions) -> tuple[RoutingSource, list[str]]:
    """The routing the runtime replays: the plan's synthetic knobs and seed, or its trace; plus warnings."""
    prov = dict(layout.plan.stats.provenance)
    source = prov.get("source", "synthetic")
    if source == "trace" or options.trace_file:
        name = options.trace_file or prov.get("file")
        if name is not None and trace_file_problem(str(name)):
            raise InputError(f"{trace_file_problem(str(name))} (put the trace beside manifest.json, or emit with "
                             f"--trace FILE)", source="plan.json", field="stats.provenance.file")
        warnings = [] if options.trace_file else [
            f"the plan was built from trace {name!r}: put it beside manifest.json or re-emit with --trace PATH"]
        seed = int(prov.get("seed", layout.plan.solver.seed))
        return RoutingSource(kind="trace", seed=seed, trace_file=name), warnings
    knobs = {k: float(prov[k]) for k in _KNOBS if isinstance(prov.get(k), (int, float))}
    seed = int(prov.get("seed", layout.plan.solver.seed))
    warnings = []
    if source != "synthetic":
        warnings.append(f"the plan's statistics come from {prov.get('file', source)!r}, not a per-token trace: "
                        f"the runtime will draw synthetic routing (seed {seed}); give --trace FILE to replay a trace")
    return RoutingSource(kind="synthetic", seed=seed, knobs=knobs), warnings


def build_manifest(layout: Layout, plan_sha256: str, options: EmitOptions) -> tuple[Manifest, list[str]]:
    plan = layout.plan
    ranks = [RankEntry(rank=r.rank, host=r.host, node=r.node, local_gpu=r.local_gpu,
                       experts=[ExpertRef(moe_layer=s.moe_layer, layer=s.layer, expert=s.expert, replica=s.replica)
                                for s in r.slots])
             for r in layout.rows]
    routing, warnings = routing_source(layout, options)
    manifest = Manifest(plan_sha256=plan_sha256, model=plan.model, flow=plan.flow.name, dedup=plan.flow.dedup,
                        world_size=layout.world_size, gpus_per_node=layout.gpus_per_node, hosts=list(layout.hosts),
                        master_addr=layout.master_addr, master_port=options.master_port,
                        buffers=buffers(layout, options), routing=routing, ranks=ranks)
    return manifest, warnings


def manifest_text(manifest: Manifest) -> str:
    return dumps_json(manifest.model_dump(mode="json"))
