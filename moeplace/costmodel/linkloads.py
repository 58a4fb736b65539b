"""A written plan's traffic routed over the fabric it was made on (`moeplace topology loads`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moeplace.placement.gputraffic import problem_gpu_traffic
from moeplace.topologies.routing import link_loads


def plan_problem(plan_path: str | Path, stats_ref: str | None = None):
    """(problem, item_gpu_I, plan path) of a plan, on its own statistics (synthetic ones regenerated) or
    on `stats_ref`, with the fabric rebuilt from the plan's topology record."""
    from moeplace.evaluation import load_plan_problem

    pp = load_plan_problem(plan_path, stats_ref=stats_ref)
    return pp.problem, pp.item_gpu_I, pp.path


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
