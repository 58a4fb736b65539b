"""From inputs (model, cluster, topology, statistics) to a `Problem`: the planner's front half."""

from __future__ import annotations

import numpy as np

from moeplace.errors import InputError
from moeplace.fileio import file_digest
from moeplace.placement.fabric import resolve_fabric
from moeplace.placement.flows import build_traffic
from moeplace.placement.problem import Problem
from moeplace.placement.schema import ClusterSpec, ModelSpec
from moeplace.topologies.base import Fabric, TierCosts
from moeplace.traces.stats import RoutingStats
from moeplace.traces.synth import synthesize


def check_capacity(model: ModelSpec, cluster: ClusterSpec, *, replicas: int = 0, copies: int | None = None,
                   nodes_from: str | None = None, hint: str | None = None) -> None:
    """Refuse a model that cannot fit the cluster's expert slots, before any statistics are built or traces read.

    The one capacity check of solve, compare, evaluate, predict and `api.solve`; its one line says what fits.
    replicas: extra copies asked for (`--replicas`); copies: the items of a plan being re-read (copies
    included); nodes_from: the file that sets the node count (it then cannot be changed with --nodes);
    hint: what fits, in the caller's words, with `{per_gpu}` and `{nodes}` filled in.
    """
    items = model.num_items if copies is None else int(copies)
    slots, gpus, G, X, N = cluster.num_slots, cluster.num_gpus, cluster.gpus_per_node, cluster.experts_per_gpu, \
        cluster.num_nodes
    if replicas:
        if X != 1:
            raise InputError(f"replicas need one expert per GPU (experts_per_gpu is {X}); for copies in an EP "
                             "layout use --flow ep --redundant-experts R", field="--replicas")
        spare = max(slots - items, 0)
        if replicas > spare:
            raise InputError(f"{replicas} replicas need {replicas} spare GPUs; {N} nodes x {G} GPUs = {gpus} GPUs "
                             f"hold {items} experts and leave {spare} spare", field="--replicas")
    if items <= slots:
        return
    what = (f"{model.num_experts} experts x {model.num_moe_layers} MoE layers = {items:,} experts" if copies is None
            else f"{items:,} experts (copies included)")
    per_gpu = -(-items // gpus)
    nodes = -(-items // (G * X))
    if hint:
        fits = hint.format(per_gpu=per_gpu, nodes=nodes)
    elif nodes_from:
        fits = f"--experts-per-gpu {per_gpu} fits them on its {N} hosts, or a fabric of {nodes} nodes"
    else:
        fits = f"--experts-per-gpu {per_gpu} fits them, or --nodes {nodes}"
    raise InputError(f"{what} do not fit {N:,} nodes x {G} GPUs x {X} experts per GPU = {slots:,} slots: {fits}",
                     source=nodes_from, field=None if nodes_from else "cluster")


def build_fabric(cluster: ClusterSpec, topology: str | None = None) -> Fabric:
    """The fabric `--topology` names: fat-tree, dragonfly+ (the generators, with the cluster's topology
    parameters when it is that kind), a generator .toml/.json, a Slurm topology.conf, ibnetdiscover output or
    a host list (see `moeplace.placement.fabric`); None: the cluster's own topology."""
    return resolve_fabric(cluster, topology)


def default_stats(model: ModelSpec, seed: int = 0) -> RoutingStats:
    """The embedded default: synthetic statistics for the model's shape from a fixed seed."""
    return synthesize(model.num_moe_layers, model.num_experts, model.top_k, seed=seed,
                      layer_numbers=model.moe_layer_numbers)


def default_tier_costs(cluster: ClusterSpec, fabric: Fabric | None = None) -> TierCosts:
    """Hop-bytes normalised to one leaf crossing: a network tier costs the mean links of its node pairs / 2
    (fat-tree leaf 2 links = 1.0, pod 4 = 2.0, core 6 = 3.0; Dragonfly+ group 4 = 2.0, global 5 = 2.5), and
    NVLink the per-GPU network bandwidth over the NVLink bandwidth."""
    nvlink = round(cluster.nic_gbytes_per_gpu / cluster.gpu.nvlink_gbps, 6)
    values = [0.0, nvlink, 1.0, 2.0, 3.0]
    if fabric is None:
        return TierCosts(tuple(values))
    hops = fabric.node_hops_NN
    for tier in range(2, len(values)):
        mask = fabric.node_tier_NN == tier
        if mask.any():
            values[tier] = round(float(hops[mask].mean()) / 2.0, 6)
    for tier in range(2, len(values)):
        values[tier] = max(values[tier], values[tier - 1])
    return TierCosts(tuple(values))


def build_problem(model: ModelSpec, cluster: ClusterSpec, stats: RoutingStats, *, fabric: Fabric | None = None,
                  flow: str = "chain", dedup: bool = True, tier_costs: TierCosts | None = None,
                  balance_per_layer: bool = False, stats_source: str = "statistics", replicas: int = 0,
                  copies_LE: np.ndarray | None = None) -> Problem:
    """replicas: extra copies handed to the hottest experts (`replication.choose_copies`); copies_LE: the
    copies per expert given explicitly (a plan being re-read)."""
    from moeplace.placement.replication import choose_copies, expand_traffic, item_table

    stats.check_model(model.num_moe_layers, model.num_experts, model.top_k, stats_source)
    fabric = fabric or build_fabric(cluster)
    traffic = build_traffic(flow, stats, model, dedup=dedup)
    if copies_LE is None:
        check_capacity(model, cluster, replicas=replicas)
        copies_LE = choose_copies(stats.load_LE, replicas)
    item_base, item_replica = item_table(copies_LE)
    traffic = expand_traffic(traffic, item_base)
    return Problem(model=model, cluster=cluster, fabric=fabric, flow=flow, dedup=dedup,
                   tier_costs=tier_costs or default_tier_costs(cluster, fabric), traffic=traffic,
                   balance_per_layer=balance_per_layer, item_base_I=item_base, item_replica_I=item_replica)


def load_stats(ref: str | None, model: ModelSpec, *, seed: int = 0, synth: dict | None = None) -> RoutingStats:
    """Statistics for planning: a moeplace statistics `.npz`, any trace moeplace reads (`topk` arrays, JSON
    lines, SGLang dumps, TensorRT-LLM statistics; see moeplace.traces.read), or the synthetic default.

    A trace is aggregated on the fly (all its paths kept, for the exact dedup objective). Statistics that
    lack transitions or co-activation (load-only dumps) plan with independent routing in their place
    (`traces.counts.assume_independent`), named in the provenance as `assumed_independent`.
    """
    from pathlib import Path

    from moeplace.traces.counts import assume_independent
    from moeplace.traces.read import ReadOptions, detect_format, read_stats
    from moeplace.traces.synth import synthesize

    if ref is None:
        knobs = dict(synth or {})
        return synthesize(model.num_moe_layers, model.num_experts, model.top_k, seed=knobs.pop("seed", seed),
                          layer_numbers=model.moe_layer_numbers, **knobs)
    p = Path(ref)
    if not p.exists():
        raise InputError("file not found", source=str(p))
    fmt = detect_format(p)
    digest = {"sha256": file_digest(str(p))} if p.is_file() else {}
    layers = None
    if fmt == "topk":
        check_topk_header(p, model)
        layers = model.moe_layer_numbers
    if fmt == "stats":
        stats = RoutingStats.load(p)
        prov = dict(stats.provenance)
        prov.setdefault("source", "statistics")
    else:
        stats = read_stats(p, ReadOptions(num_experts=model.num_experts, top_k=model.top_k, keep_paths=None,
                                          layer_numbers=layers), fmt)
        prov = dict(stats.provenance)
    stats.check_model(model.num_moe_layers, model.num_experts, model.top_k, str(p))
    stats, assumed = assume_independent(stats)
    stats.check_plannable(str(p))
    if assumed:
        prov["assumed_independent"] = assumed
    prov["file"] = p.name
    prov.update(digest)
    return stats.with_provenance(prov)


ASSUMED_NOTE = "co-activation and layer-to-layer traffic were not measured: planned on independent routing"


def check_topk_header(path, model: ModelSpec) -> None:
    """A `topk` trace's shape, from its header, against the model: nothing past the header is read."""
    from moeplace.traces.arrays import topk_blocks

    shape, _ = topk_blocks(path)
    if len(shape) != 3:
        raise InputError(f"must be [tokens, moe_layers, k], got shape {shape}", source=str(path), field="topk")
    if shape[1] != model.num_moe_layers:
        raise InputError(f"{shape[1]} MoE layers, the model has {model.num_moe_layers}", source=str(path),
                         field="topk")
    if shape[2] != model.top_k:
        raise InputError(f"top-{shape[2]} rows, the model has top_k {model.top_k}", source=str(path), field="topk")
