"""A written plan's traffic routed over the fabric it was made on (`moeplace topology loads`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moeplace.errors import InputError
from moeplace.topologies.base import TIER_KEYS, TierCosts
from moeplace.topologies.resolve import rebuild_fabric
from moeplace.topologies.routing import link_loads
from moeplace.topologies.transfers import problem_gpu_traffic

SYNTH_KNOBS = ("skew", "coact", "affinity", "cluster_size", "num_tokens", "seed")


def plan_problem(plan_path: str | Path, stats_ref: str | None = None):
    """(problem, item_gpu_I, plan path) of a plan, on its own statistics (synthetic ones regenerated) or
    on `stats_ref`, with the fabric rebuilt from the plan's topology record."""
    from moeplace.evaluation import resolve_plan_path
    from moeplace.placement.builder import build_problem, load_stats
    from moeplace.placement.plan import load_plan

    path = resolve_plan_path(plan_path)
    plan = load_plan(path)
    if stats_ref is not None:
        stats = load_stats(stats_ref, plan.model)
    else:
        prov = dict(plan.stats.provenance)
        if prov.get("source") != "synthetic":
            raise InputError(f"the plan was made from {prov.get('source', 'unknown')} statistics "
                             f"({prov.get('file', '?')}); give them again with --stats", source=str(path))
        stats = load_stats(None, plan.model, synth={k: prov[k] for k in SYNTH_KNOBS if k in prov})
    fabric = rebuild_fabric(plan.cluster, plan.topology.kind, plan.topology.params,
                            search_dirs=(path.parent, Path.cwd()))
    costs = TierCosts(tuple(float(plan.flow.tier_costs[k]) for k in TIER_KEYS))
    problem = build_problem(plan.model, plan.cluster, stats, fabric=fabric, flow=plan.flow.name,
                            dedup=plan.flow.dedup, tier_costs=costs, balance_per_layer=plan.balance_per_layer,
                            stats_source=stats_ref or "the plan's statistics")
    return problem, plan.item_gpu(), path


def plan_link_loads(plan_path: str | Path, *, stats_ref: str | None = None, routing: str | None = None,
                    rate: float | None = None, top: int = 8) -> dict:
    problem, item_gpu, path = plan_problem(plan_path, stats_ref)
    traffic = problem_gpu_traffic(problem, item_gpu)
    loads = link_loads(problem.fabric, traffic.src_gpu_F, traffic.dst_gpu_F, traffic.bytes_F, routing=routing)
    busiest = loads.busiest(top)
    for row in busiest:
        row["utilization"] = row["time_s"] * rate if rate else None
    nic = np.maximum(loads.nic_tx_bytes_NR, loads.nic_rx_bytes_NR)
    return {"plan": str(path), "fabric": problem.fabric.description, "routing": loads.routing, "pxn": loads.pxn,
            "network_bytes_per_token": loads.network_bytes, "max_nic_bytes_per_token": float(nic.max(initial=0.0)),
            "max_nvlink_bytes_per_token": float(loads.nvlink_tx_bytes_G.max(initial=0.0)),
            "saturation_tokens_per_s": loads.saturation_rate,
            "max_link_utilization": loads.max_link_utilization(rate) if rate else None, "busiest": busiest}
