"""Is Mt-KaHyPar's cross-node traffic beatable? lns on the cross-node objective alone, against lns on the tiered
objective and Mt-KaHyPar (km1 on the flow's hyperedges), on one seed instance of `solver_quality.py`, held out:

    python benchmarks/flat_tiers_probe.py --affinity 0.9 [--time-limit 60]

"Flat" prices every network tier at 1 (leaf, pod and core alike; NVLink keeps its cost), so that the
objective is cross-node bytes, what Mt-KaHyPar minimizes. Results: benchmarks/RESULTS.md (solver quality).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import solver_quality as sq  # noqa: E402

from moeplace.peers.registry import PEERS, missing  # noqa: E402
from moeplace.placement.cost import evaluate  # noqa: E402
from moeplace.placement.presets import load_cluster, load_model  # noqa: E402
from moeplace.solvers.base import SolveConfig  # noqa: E402
from moeplace.solvers.registry import solve  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--affinity", type=float, default=0.9)
    ap.add_argument("--skew", type=float, default=0.35)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=60.0)
    args = ap.parse_args()
    plan, held = sq._synthetic(load_model(None), load_cluster(None), "fat-tree", skew=args.skew,
                               affinity=args.affinity, seed=args.seed)()
    tc = plan.tier_costs
    flat = dataclasses.replace(plan, tier_costs=type(tc)((0.0, tc.cost_T[1], 1.0, 1.0, 1.0)))
    plans = {}
    for name, problem in (("lns, cross-node objective", flat), ("lns, tiered objective", plan)):
        t = time.monotonic()
        plans[name] = solve(problem, SolveConfig(time_limit_s=args.time_limit, seed=args.seed), solver="lns").item_gpu_I
        print(f"{name}: {time.monotonic() - t:.1f} s", flush=True)
    if not missing("mtkahypar"):
        plans["Mt-KaHyPar (km1)"] = PEERS["mtkahypar"](plan, args.seed)
    print(f"seed fat-tree, skew {args.skew}, affinity {args.affinity}, seed {args.seed}; held-out B/token")
    print("| method | cross-node | tiered objective |\n|---|---:|---:|")
    for name, a in plans.items():
        h = evaluate(held, a)
        print(f"| {name} | {h.cross_node_bytes:,.0f} | {h.objective:,.0f} |")


if __name__ == "__main__":
    main()
