"""Solver quality: every peer and every registered solver on the same instances, scored on held-out traffic.

    python benchmarks/solver_quality.py --quick            # ~20 min on 2 cores: seed x 4 affinities, FLAME, small
    python benchmarks/solver_quality.py --full             # every instance of issue 5 (hours on 2 cores)
    python benchmarks/solver_quality.py --only flame       # instances whose name matches a regex

Each instance is a pair of problems with the same model, cluster, fabric, flow (chain, node dedup) and tier
costs: the planning problem (the statistics a method sees) and the held-out problem (other tokens of the
same workload: synthetic paths drawn with another `path_seed` from the same generator structure; for the
FLAME-MoE trace sequences 16-31 against 0-15). Every method plans on the first; the table reports:

    held-out cross-node B/token  bytes per token that cross the network (leaf tier and above), held out
    held-out objective           the tiered objective (leaf-byte equivalents per token), held out
    plan objective               the tiered objective on the planning statistics (what the bound bounds)
    bound, gap                   the instance's best proven lower bound on the plan objective (the largest of
                                 the combinatorial bound and every solver's bound) and (plan - bound) / plan
    wall s                       the method's own time (problem construction excluded)

Every method runs in a forked worker process (a crash or a timeout costs one row, not the run; Mt-KaHyPar is
initialised per process). A peer whose library is missing is listed as skipped with the reason. The classic
4- and 8-experts-per-GPU layouts run on the same traffic with fewer GPUs (`moeplace.peers.classic`); their
rows name the GPU count and their gap is to their own problem's bound.

Writes the markdown report to stdout and every number to a JSON file (--json).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import multiprocessing as mp
import platform
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from moeplace.errors import InputError  # noqa: E402
from moeplace.fileio import dumps_json, write_text  # noqa: E402
from moeplace.peers import PEER_INFO, PEERS, missing  # noqa: E402
from moeplace.peers.classic import classic_cluster, classic_layout  # noqa: E402
from moeplace.placement.builder import build_fabric, build_problem  # noqa: E402
from moeplace.placement.cost import evaluate  # noqa: E402
from moeplace.placement.presets import load_cluster, load_model  # noqa: E402
from moeplace.placement.problem import Problem  # noqa: E402
from moeplace.traces.stats import RoutingStats  # noqa: E402
from moeplace.traces.synth import synthesize  # noqa: E402
from moeplace.placement.validate import violations  # noqa: E402
from moeplace.solvers import SolveConfig, available_solvers, solve  # noqa: E402
from moeplace.solvers.bounds import combinatorial_bound  # noqa: E402
from moeplace.solvers.node_lp import NodeBudget, node_tier_bound  # noqa: E402
from solver_quality_report import render  # noqa: E402

FLAME = REPO.parent / "shared" / "data" / "routing" / "flame-moe-290m" / "encoder_2048tok.npz"
HELD_OUT_PATH_SEED = 1
SKEWS = (0.35, 1.0)
AFFINITIES = (0.0, 0.3, 0.6, 0.9)
CLASSIC = (4, 8)


@dataclass(frozen=True)
class Instance:
    name: str
    family: str
    build: Callable[[], tuple[Problem, Problem]]
    large: bool = False


def _synthetic(model, cluster, topology: str, *, skew: float, affinity: float, seed: int,
               num_tokens: int = 8192) -> Callable[[], tuple[Problem, Problem]]:
    def build() -> tuple[Problem, Problem]:
        fabric = build_fabric(cluster, topology)
        knobs = dict(num_tokens=num_tokens, skew=skew, affinity=affinity, seed=seed,
                     layer_numbers=model.moe_layer_numbers)
        args = (model.num_moe_layers, model.num_experts, model.top_k)
        plan = build_problem(model, cluster, synthesize(*args, **knobs), fabric=fabric)
        held = build_problem(model, cluster, synthesize(*args, **knobs, path_seed=HELD_OUT_PATH_SEED), fabric=fabric)
        return plan, held
    return build


def _flame() -> tuple[Problem, Problem]:
    """FLAME-MoE-290M: 8 MoE layers x 64 experts, top-6, on 64 nodes x 8 GPUs; 14,336 B per transfer."""
    with np.load(FLAME, allow_pickle=False) as z:
        topk, seq = z["topk"], z["sequence"]
    model = load_model(None, name="flame-moe-290m", num_layers=9, dense_layers=[1], num_experts=64, top_k=6,
                       hidden=7168, expert_hidden=1024, num_heads=8, head_dim=128)
    cluster = load_cluster("seed", num_nodes=64)
    fabric = build_fabric(cluster, "fat-tree")

    def problem(mask):
        stats = RoutingStats.from_paths(topk[mask], 64, layer_numbers=model.moe_layer_numbers, keep_paths=None)
        return build_problem(model, cluster, stats, fabric=fabric)
    return problem(seq < 16), problem(seq >= 16)


def _small_model(experts: int, layers: int):
    return load_model(None, name=f"small-{experts}x{layers}", num_layers=layers, dense_layers=[], num_experts=experts,
                      top_k=2, hidden=7168, expert_hidden=2048, num_heads=8, head_dim=128)


def instances(args) -> list[Instance]:
    out: list[Instance] = []
    seed_model, seed_cluster = load_model("seed"), load_cluster("seed")
    seeds = range(args.seeds)
    skews = SKEWS[:1] if args.quick else SKEWS
    for topology in args.topology:
        for skew in skews:
            for aff in AFFINITIES:
                for s in seeds:
                    out.append(Instance(f"seed-{topology}-skew{skew}-aff{aff}-s{s}", "seed",
                                        _synthetic(seed_model, seed_cluster, topology, skew=skew, affinity=aff,
                                                   seed=s)))
    if FLAME.is_file():
        out.append(Instance("flame-64x8", "flame", _flame))
    else:
        print(f"note: FLAME-MoE trace not found at {FLAME}; instance skipped", file=sys.stderr)
    small16 = load_cluster("seed", num_nodes=16, gpus_per_node=4, nics_per_node=4,
                           topology={"nodes_per_leaf": 4, "leaves_per_pod": 2})
    small6 = load_cluster("seed", num_nodes=6, gpus_per_node=4, nics_per_node=4,
                          topology={"nodes_per_leaf": 2, "leaves_per_pod": 2})
    for s in seeds:
        out.append(Instance(f"small-64-aff0.6-s{s}", "small",
                            _synthetic(_small_model(16, 4), small16, "fat-tree", skew=0.35, affinity=0.6, seed=s,
                                       num_tokens=2048)))
        out.append(Instance(f"small-24-aff0.6-s{s}", "small",
                            _synthetic(_small_model(8, 3), small6, "fat-tree", skew=0.35, affinity=0.6, seed=s,
                                       num_tokens=2048)))
    if not args.quick:
        dsv3 = load_model("deepseek-v3")
        cluster = load_cluster("seed", num_nodes=1856, topology={"radix": 64})
        out.append(Instance("dsv3-14848-aff0.6", "dsv3",
                            _synthetic(dsv3, cluster, "fat-tree", skew=0.35, affinity=0.6, seed=0), large=True))
    if args.only:
        out = [i for i in out if re.search(args.only, i.name)]
    return out


def _child(fn, conn) -> None:
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        if "skipped" not in out:
            out["wall_s"] = time.perf_counter() - t0
            out["cpu_s"] = time.process_time() - c0  # this process only (threads included, children not)
        out["peak_rss_mb"] = _peak_rss_mb()
    except Exception as exc:  # reported as the row's error; the benchmark goes on
        out = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300],
               "trace": traceback.format_exc(limit=3)}
    conn.send(out)
    conn.close()


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM), MB; a worker's includes pages inherited at fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def isolated(fn: Callable[[], dict], timeout_s: float) -> dict:
    """Run `fn` in a forked worker; its dict, or {"error": ...} on exception, crash or timeout."""
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, send))
    proc.start()
    send.close()
    try:
        if recv.poll(timeout_s):
            out = recv.recv()
        else:
            proc.kill()
            out = {"error": f"timeout: no result after {timeout_s:.0f} s, worker killed"}
    except EOFError:
        out = {"error": "worker died without a result"}
    proc.join()
    if proc.exitcode not in (0, None) and "error" not in out:
        out["error"] = f"worker exit code {proc.exitcode}"
    return out


def run_peer(name: str, problem: Problem, seed: int, timeout_s: float) -> dict:
    why = missing(name)
    if why:
        return {"skipped": why}
    return isolated(lambda: {"item_gpu_I": PEERS[name](problem, seed)}, timeout_s)


def run_solver(name: str, problem: Problem, args, time_limit_s: float) -> dict:
    def fn() -> dict:
        cfg = SolveConfig(time_limit_s=time_limit_s, seed=args.seed, workers=args.workers)
        try:
            r = solve(problem, cfg, solver=name)
        except InputError as exc:   # a backend that refuses the instance (e.g. an exact model past its size)
            return {"skipped": str(exc)}
        return {"item_gpu_I": r.item_gpu_I, "bound": r.bound, "bound_method": r.details.get("bound_method"),
                "status": r.status, "stop_reason": r.stop_reason}
    return isolated(fn, time_limit_s * 1.5 + 120)


def score(row: dict, plan: Problem, held: Problem) -> dict:
    a = row.pop("item_gpu_I", None)
    row.pop("trace", None)
    if a is None:
        return row
    broken = violations(plan, a)
    if broken:
        row["error"] = f"infeasible plan: {broken[0]}"
        return row
    cp, ch = evaluate(plan, a), evaluate(held, a)
    row.update(plan_objective=cp.objective, plan_cross_node=cp.cross_node_bytes, held_objective=ch.objective,
               held_cross_node=ch.cross_node_bytes)
    return row


def classic_problems(plan: Problem, held: Problem, topology: str, c: int) -> tuple[Problem, Problem]:
    cluster = classic_cluster(plan.model, plan.cluster, c)
    fabric = build_fabric(cluster, topology)
    return (dataclasses.replace(plan, cluster=cluster, fabric=fabric, balance_per_layer=True),
            dataclasses.replace(held, cluster=cluster, fabric=fabric, balance_per_layer=True))


def run_instance(inst: Instance, args, solver_names: list[str], peer_names: list[str]) -> dict:
    t0 = time.perf_counter()
    plan, held = inst.build()
    build_s = time.perf_counter() - t0
    comb = combinatorial_bound(plan)
    c0 = time.process_time()
    node_value, node_method, _ = node_tier_bound(plan, NodeBudget(rounds=args.bound_rounds, per_round=5_000))
    node_cpu_s = time.process_time() - c0
    rows: list[dict] = []
    tl = args.large_time_limit if inst.large else args.small_time_limit if inst.family == "small" else args.time_limit
    peer_timeout = args.large_peer_timeout if inst.large else args.peer_timeout
    for name in peer_names:
        if name == "classic":
            continue
        rows.append(score({"method": name, "kind": "peer", **run_peer(name, plan, args.seed, peer_timeout)},
                          plan, held))
        _progress(inst.name, rows[-1])
    for name in solver_names:
        rows.append(score({"method": name, "kind": "solver", **run_solver(name, plan, args, tl)}, plan, held))
        _progress(inst.name, rows[-1])
    bounds = [(comb, "combinatorial"), (node_value, node_method)] + [
        (r["bound"], f"{r.get('bound_method') or 'its own'} (in {r['method']}'s solve)") for r in rows
        if r.get("bound") is not None]
    best_bound, bound_src = max(bounds, key=lambda t: t[0])
    for r in rows:
        if "plan_objective" in r:
            r["gap"] = max(0.0, (r["plan_objective"] - best_bound) / r["plan_objective"])
    if "classic" in peer_names:
        topology = "dragonfly+" if plan.fabric.kind.lower().startswith("dragonfly") else "fat-tree"
        for c in CLASSIC:
            try:
                cp, ch = classic_problems(plan, held, topology, c)
            except Exception as exc:  # a cluster the generator cannot build at that size
                rows.append({"method": f"classic-{c}", "kind": "peer", "error": f"{type(exc).__name__}: {exc}"})
                continue
            r = score({"method": f"classic-{c}", "kind": "peer", "gpus": cp.num_gpus,
                       **isolated(lambda cp=cp: {"item_gpu_I": classic_layout(cp, args.seed)}, peer_timeout)},
                      cp, ch)
            if "plan_objective" in r:
                own = combinatorial_bound(cp)
                r["own_bound"] = own
                r["gap"] = max(0.0, (r["plan_objective"] - own) / r["plan_objective"])
            rows.append(r)
            _progress(inst.name, rows[-1])
    return {"instance": inst.name, "family": inst.family, "items": plan.num_items, "nodes": plan.num_nodes,
            "gpus": plan.num_gpus, "fabric": plan.fabric.description, "hyperedges_plan": plan.traffic.num_edges,
            "hyperedges_held_out": held.traffic.num_edges, "build_s": build_s, "combinatorial_bound": comb,
            "best_bound": best_bound, "best_bound_from": bound_src, "node_bound": node_value, "node_bound_method": node_method,
            "node_bound_cpu_s": node_cpu_s, "time_limit_s": tl, "rows": rows}


def _progress(instance: str, row: dict) -> None:
    if "held_cross_node" in row:
        what = f"held-out cross {row['held_cross_node']:,.0f} B/token in {row['wall_s']:.1f} s"
    else:
        what = row.get("error") or row.get("skipped")
    print(f"[{time.strftime('%H:%M:%S')}] {instance} {row['method']}: {what}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="seed x 4 affinities (one skew), FLAME, small (default)")
    mode.add_argument("--full", action="store_true", help="every instance: 2 skews, the 14,848-item instance")
    ap.add_argument("--seeds", type=int, default=None, help="statistics seeds per setting (quick 1, full 3)")
    ap.add_argument("--topology", action="append", default=None,
                    help="fat-tree and/or dragonfly+ (repeatable; quick: fat-tree, full: both)")
    ap.add_argument("--only", default=None, help="regex on instance names")
    ap.add_argument("--bound-rounds", type=int, default=4,
                    help="rounds of the node-tier matching LP for the instance's bound (deterministic work)")
    ap.add_argument("--peers", default=None, help="comma-separated peers (default: all registered)")
    ap.add_argument("--solvers", default=None, help="comma-separated solvers (default: all registered; '' for none)")
    ap.add_argument("--time-limit", type=float, default=None, help="solver time limit, s (quick 20, full 60)")
    ap.add_argument("--small-time-limit", type=float, default=60.0,
                    help="solver time limit on the instances of <= 64 items (issue 5: proven optimal within 60 s)")
    ap.add_argument("--large-time-limit", type=float, default=600.0, help="solver time limit on the 14,848-item instance")
    ap.add_argument("--peer-timeout", type=float, default=1800.0, help="kill a peer after this many seconds")
    ap.add_argument("--large-peer-timeout", type=float, default=3600.0,
                    help="kill a peer on the 14,848-item instance after this many seconds")
    ap.add_argument("--workers", type=int, default=1, help="solver worker threads")
    ap.add_argument("--seed", type=int, default=0, help="seed given to every peer and solver")
    ap.add_argument("--json", default=None, help="where to write every number (default benchmarks/solver_quality_<mode>.json)")
    ap.add_argument("--render", default=None, metavar="FILE.json", help="print the report of a finished or partial run")
    args = ap.parse_args(argv)
    if args.render:
        sys.stdout.write(render(json.loads(Path(args.render).read_text())))
        return 0
    args.quick = not args.full
    mode_name = "quick" if args.quick else "full"
    args.seeds = args.seeds or (1 if args.quick else 3)
    args.topology = args.topology or (["fat-tree"] if args.quick else ["fat-tree", "dragonfly+"])
    args.time_limit = args.time_limit or (20.0 if args.quick else 60.0)
    peer_names = list(PEERS) if args.peers is None else [p for p in args.peers.split(",") if p]
    solver_names = list(available_solvers()) if args.solvers is None else [s for s in args.solvers.split(",") if s]
    for p in peer_names:
        if p not in PEERS:
            ap.error(f"unknown peer {p!r} (known: {', '.join(PEERS)})")
        if missing(p):
            print(f"note: {missing(p)}; skipped", file=sys.stderr)
    report = {"mode": mode_name, "date": datetime.date.today().isoformat(),
              "machine": f"{platform.node()} · {platform.processor() or platform.machine()} · "
                         f"{_cpu_count()} cores · Python {platform.python_version()}",
              "command": "python benchmarks/solver_quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "peers": {p: PEER_INFO[p].summary for p in peer_names}, "solvers": solver_names, "instances": []}
    for inst in instances(args):
        report["instances"].append(run_instance(inst, args, solver_names, peer_names))
        report["peak_rss_mb"] = _peak_rss_mb()
        write_text(args.json or REPO / "benchmarks" / f"solver_quality_{mode_name}.json", dumps_json(_plain(report)))
    sys.stdout.write(render(report))
    return 0


def _plain(obj):
    """JSON-ready copy: numpy scalars to Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    raise SystemExit(main())
