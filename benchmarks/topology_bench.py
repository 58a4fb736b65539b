"""Fabric benchmarks: building the seed fabric and its tier matrix, and routing one plan's traffic over it.

Targets (issue 3): the seed fabric (232 nodes x 8 GPUs, 40-port HDR fat-tree) with its tier matrix in under
2 s; link loads for one plan's traffic on the seed cluster in under 5 s.

    python benchmarks/topology_bench.py            # prints a Markdown table
    python benchmarks/topology_bench.py --append   # and appends it to benchmarks/RESULTS.md

The plan is the greedy solver's on the seed model with synthetic statistics (seed 0, a fixed work limit, so
it is the same plan every run); its traffic is the objective's own transfers (`problem_gpu_traffic`).
Each timing is the median of `--repeat` runs in this process, after one untimed warm-up run; "first" is
that warm-up, which also pays the imports.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from pathlib import Path

import numpy as np


def timed(fn, repeat: int) -> tuple[float, float, object]:
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return first, statistics.median(runs), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--work-limit", type=float, default=20000, help="greedy solver work for the benchmark plan")
    ap.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = ap.parse_args()

    from moeplace.placement.builder import build_fabric
    from moeplace.placement.gputraffic import problem_gpu_traffic
    from moeplace.placement.presets import load_cluster, load_model
    from moeplace.planner import PlanRequest, make_problem
    from moeplace.solvers import SolveConfig, solve
    from moeplace.topologies.routing import link_loads
    from moeplace.topologies.summary import bisection_gbps

    seed = load_cluster("seed")
    rows: list[tuple[str, float, float, str]] = []

    def fabric_and_tiers(kind):
        f = build_fabric(seed, kind)
        assert f.node_tier_NN.shape == (232, 232) and f.node_hops_NN.max() > 0
        return f

    cold = _fresh_process_build()
    rows.append(("seed fat-tree in a fresh Python: imports + build + tier matrix", cold, cold,
                 "one run, wall time of the whole process; target < 2 s"))
    for kind in ("fat-tree", "dragonfly+"):
        first, med, fabric = timed(lambda k=kind: fabric_and_tiers(k), args.repeat)
        rows.append((f"seed {kind}: build fabric + tier matrix + hop matrix", first, med,
                     f"{fabric.network.num_switches} switches, {fabric.network.num_links} links, target < 2 s"))
    ft = build_fabric(seed, "fat-tree")
    df = build_fabric(seed, "dragonfly+")
    first, med, bis = timed(lambda: bisection_gbps(ft), args.repeat)
    rows.append(("seed fat-tree: bisection (networkx min cut)", first, med, f"{bis / 1000:.1f} Tb/s"))

    for flow in ("chain", "ep"):
        problem, _ = make_problem(PlanRequest(model=load_model("seed"), cluster=seed, flow=flow))
        result = solve(problem, SolveConfig(time_limit_s=600, seed=0, work_limit=args.work_limit), solver="greedy")
        plan = result.item_gpu_I
        first, med, traffic = timed(lambda p=problem, a=plan: problem_gpu_traffic(p, a), args.repeat)
        rows.append((f"seed {flow} plan: GPU-to-GPU flows from the objective's hyperedges", first, med,
                     f"{traffic.src_gpu_F.size:,} flows"))
        for fabric, routing in ((ft, "ecmp"), (df, "minimal"), (df, "valiant")):
            def route(f=fabric, r=routing, t=traffic):
                return link_loads(f, t.src_gpu_F, t.dst_gpu_F, t.bytes_F, routing=r)

            first, med, loads = timed(route, args.repeat)
            rows.append((f"seed {flow} plan on {fabric.kind}: link loads ({routing})", first, med,
                         f"busiest link full at {loads.saturation_rate:,.0f} tokens/s; target < 5 s"))
        first, med, _ = timed(lambda p=problem, a=plan: link_loads(ft, *_flows(problem_gpu_traffic(p, a))),
                              args.repeat)
        rows.append((f"seed {flow} plan on fat-tree: flows + link loads together", first, med, "target < 5 s"))

    head = (f"## Topologies (issue 3): fabric build and link loads\n\n"
            f"{datetime.date.today().isoformat()}, {_cpu_model()} "
            f"({_cpus()} CPUs), Python {platform.python_version()}, numpy {np.__version__}; "
            f"`python benchmarks/topology_bench.py --repeat {args.repeat}`\n\n"
            "| what | first run (s) | median (s) | notes |\n|---|---:|---:|---|\n")
    table = head + "".join(f"| {w} | {a:.3f} | {b:.3f} | {n} |\n" for w, a, b, n in rows)
    print(table)
    if args.append:
        path = Path(__file__).resolve().parent / "RESULTS.md"
        old = path.read_text() if path.exists() else "# Benchmark results\n"
        from moeplace.fileio import write_text

        write_text(path, old.rstrip("\n") + "\n\n" + table)


def _flows(t):
    return t.src_gpu_F, t.dst_gpu_F, t.bytes_F


def _fresh_process_build() -> float:
    import subprocess
    import sys

    code = ("from moeplace.placement.builder import build_fabric; from moeplace.placement.presets import "
            "load_cluster; f = build_fabric(load_cluster('seed'), 'fat-tree'); assert f.node_tier_NN.size == 232 ** 2")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    main()
