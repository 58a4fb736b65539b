"""Exact backends, LP bounds and QAPLIB: the numbers behind docs/solvers.md.

    python benchmarks/exact_bench.py                 # everything (about 25 minutes on 2 cores)
    python benchmarks/exact_bench.py --part exact    # or: bound, qaplib

Targets (issue 5): instances of up to 64 experts proven optimal within 60 s on 2 cores (every exact backend
runs with a 60 s limit and 2 workers; `lns` with 60 s alongside, for reference); the LP bound at the seed's
size (1,856 experts, 232 nodes) within 60 s on 2 cores and at least as strong as the combinatorial bound,
with the gap to the `lns` plan; QAPLIB instances against their published optima. Prints markdown tables
for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from moeplace.placement.builder import build_problem
from moeplace.placement.presets import load_cluster, load_model
from moeplace.solvers import SolveConfig, solve
from moeplace.solvers.bounds import combinatorial_bound
from moeplace.solvers.lp_bound import window_bound
from moeplace.solvers.qap import read_qaplib, solve_qap
from moeplace.topologies.base import Fabric, TierCosts, default_hosts, tiers_from_positions
from moeplace.traces.synth import synthesize

REPO = Path(__file__).resolve().parents[1]
SEED_COSTS = TierCosts((0.0, 0.055556, 1.0, 2.0, 3.0))  # the seed's default: 25 GB/s NIC per GPU / 450 GB/s NVLink


def tree(num_nodes: int, gpus_per_node: int, nodes_per_leaf: int, leaves_per_pod: int) -> Fabric:
    leaf = np.arange(num_nodes) // nodes_per_leaf
    pod = leaf // leaves_per_pod
    return Fabric(kind="fat-tree", description=f"{num_nodes} nodes, {nodes_per_leaf} per leaf, "
                  f"{leaves_per_pod} leaves per pod", gpus_per_node=gpus_per_node,
                  node_tier_NN=tiers_from_positions(leaf, pod), node_leaf_N=leaf, node_pod_N=pod,
                  hosts=default_hosts(num_nodes))


def instance(layers, experts, nodes, gpus_per_node, *, epg=1, flow="chain", nodes_per_leaf, leaves_per_pod=1,
             affinity=0.6, seed=0, tokens=2048, top_k=2):
    model = load_model(None, name="bench", num_layers=layers, dense_layers=[], num_experts=experts, top_k=top_k)
    cluster = load_cluster(None, num_nodes=nodes, gpus_per_node=gpus_per_node, experts_per_gpu=epg)
    stats = synthesize(layers, experts, top_k, num_tokens=tokens, affinity=affinity, seed=seed)
    fab = tree(nodes, gpus_per_node, nodes_per_leaf, leaves_per_pod)
    return build_problem(model, cluster, stats, flow=flow, fabric=fab, tier_costs=SEED_COSTS)


EXACT_CASES = [
    ("24 experts (3x8), 6 nodes x 4, leaves of 2", dict(layers=3, experts=8, nodes=6, gpus_per_node=4,
                                                        nodes_per_leaf=2)),
    ("32 experts (4x8), 4 nodes x 8, one leaf", dict(layers=4, experts=8, nodes=4, gpus_per_node=8,
                                                    nodes_per_leaf=4)),
    ("48 experts (3x16) ep, 2/GPU, 6 nodes x 4, leaves of 3", dict(layers=3, experts=16, nodes=6, gpus_per_node=4,
                                                                  epg=2, flow="ep", nodes_per_leaf=3)),
    ("64 experts (4x16), 8 nodes x 8, one leaf", dict(layers=4, experts=16, nodes=8, gpus_per_node=8,
                                                     nodes_per_leaf=8)),
    ("64 experts (4x16), 16 nodes x 4, 2 leaves", dict(layers=4, experts=16, nodes=16, gpus_per_node=4,
                                                      nodes_per_leaf=8)),
    ("64 experts (8x8), 8 nodes x 8, 2 leaves", dict(layers=8, experts=8, nodes=8, gpus_per_node=8,
                                                    nodes_per_leaf=4)),
    ("64 experts (4x16), 8 nodes x 8, leaves of 2, pods of 2", dict(layers=4, experts=16, nodes=8,
                                                                   gpus_per_node=8, nodes_per_leaf=2,
                                                                   leaves_per_pod=2)),
]


def part_exact(time_limit_s: float) -> None:
    print(f"\n### Exact backends, {time_limit_s:.0f} s limit, 2 workers (chain top-2 unless noted, affinity 0.6, "
          "2,048 sampled tokens)\n")
    print("| instance | backend | status | time s | objective | bound | gap | lns (60 s) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, kw in EXACT_CASES:
        p = instance(**kw)
        ref = solve(p, SolveConfig(time_limit_s=60, workers=2), solver="lns")
        for backend in ("cpsat", "ilp", "ilp-highs"):
            t = time.perf_counter()
            r = solve(p, SolveConfig(time_limit_s=time_limit_s, workers=2), solver=backend)
            wall = time.perf_counter() - t
            print(f"| {name} | {backend} | {r.status} | {wall:.1f} | {r.objective:,.3f} | {r.bound:,.3f} | "
                  f"{100 * r.gap:.2f}% | {ref.objective:,.3f} |", flush=True)


def seed_instance(affinity: float, skew: float = 0.35, seed: int = 0):
    model = load_model("seed")
    cluster = load_cluster("seed")
    stats = synthesize(model.num_moe_layers, model.num_experts, model.top_k, affinity=affinity, skew=skew, seed=seed,
                       layer_numbers=model.moe_layer_numbers)
    # the seed's fat-tree as positions: units of 20 nodes, 2 units per pod (docs/topologies.md)
    return build_problem(model, cluster, stats, fabric=tree(232, 8, 20, 2), tier_costs=SEED_COSTS)


def part_bound(time_limit_s: float) -> None:
    print(f"\n### LP bound at the seed's size (1,856 experts, 232 nodes x 8, chain, 8,192 tokens), "
          f"{time_limit_s:.0f} s, 2 workers\n")
    print("| affinity | lns plan (60 s) | combinatorial bound | gap | window LP bound | gap | bound time s | "
          "windows converged |")
    print("|---|---|---|---|---|---|---|---|")
    for affinity in (0.0, 0.3, 0.6, 0.9):
        p = seed_instance(affinity)
        plan = solve(p, SolveConfig(time_limit_s=60, workers=2), solver="lns").objective
        comb = combinatorial_bound(p)
        t = time.perf_counter()
        b = window_bound(p, time_limit_s=time_limit_s, workers=2)
        wall = time.perf_counter() - t
        print(f"| {affinity} | {plan:,.0f} | {comb:,.0f} | {100 * (1 - comb / plan):.1f}% | {b.value:,.0f} | "
              f"{100 * (1 - b.value / plan):.1f}% | {wall:.1f} | {b.details['converged']}/{b.details['windows']} |",
              flush=True)


def part_qaplib(time_limit_s: float) -> None:
    print(f"\n### QAPLIB, solve_qap with {time_limit_s:.0f} s (local search, RLT-1 LP bound, MIP)\n")
    print("| instance | published optimum | found | proven bound | optimal | time s | solver |")
    print("|---|---|---|---|---|---|---|")
    for name, opt in (("chr12a", 9552), ("had12", 1652)):
        inst = read_qaplib(REPO / "tests" / "data" / "qaplib" / f"{name}.dat")
        for solver in ("scip", "highs"):
            r = solve_qap(inst, time_limit_s=time_limit_s, solver=solver)
            print(f"| {name} | {opt} | {r.objective:.0f} | {r.bound:.1f} | {r.optimal} | {r.wall_time_s:.1f} | "
                  f"{solver} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("exact", "bound", "qaplib", "all"), default="all")
    ap.add_argument("--time-limit", type=float, default=60.0)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}")
    if args.part in ("exact", "all"):
        part_exact(args.time_limit)
    if args.part in ("bound", "all"):
        part_bound(args.time_limit)
    if args.part in ("qaplib", "all"):
        part_qaplib(args.time_limit)


if __name__ == "__main__":
    main()
