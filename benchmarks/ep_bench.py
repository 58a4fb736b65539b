"""EP placement peers side by side on DeepSeek-V3-shaped instances (issue 18, part 4).

    nice -n 10 python benchmarks/ep_bench.py                 # full: 58 layers, EP32 / EP64 / EP128
    python benchmarks/ep_bench.py --layers 4 --sizes 32      # a quick look

Instances: 256 experts, top-8, 8 expert groups, 8 GPUs per node; statistics planned on one sample of
token paths (4,096 tokens, seed 0) and scored on a held-out one (2,048 tokens, path_seed 1) of the same
synthetic structure (`moeplace.traces.synth`, fixed seeds), at two co-activation settings: the generator's
defaults (clusters of 4, coact 0.3) and strong co-activation (clusters of 16, coact 0.7). Plus the real
FLAME-MoE trace (64 experts, top-6, 8 layers; first 1,024 tokens planned, last 1,024 scored) at EP16 and EP32.
Redundant slots: R = 32 at EP32; at EP64 and EP128, (256 + 32) is not a multiple of the EP size, so R is the
smallest multiple of the EP size >= 32 (64 and 128). Scored with `moeplace.ep.score` (vLLM's copy rule).
Prints a markdown table (CPU s is each peer's own process time) and writes JSON with --out.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from moeplace.ep.eplb import gpu_load_LG
from moeplace.ep.peers import EP_PEERS, EpShape
from moeplace.ep.rebalance import coact_from_topk
from moeplace.ep.score import score
from moeplace.traces.synth import synthesize_paths

FLAME = Path(__file__).resolve().parents[1] / "../shared/data/routing/flame-moe-290m/encoder_2048tok.npz"


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def instances(layers: int, sizes: list[int]):
    for label, knobs in (("synthetic default", {}), ("synthetic strong coact", {"cluster_size": 16, "coact": 0.7})):
        plan = synthesize_paths(layers, 256, 8, num_tokens=4096, seed=0, **knobs)
        test = synthesize_paths(layers, 256, 8, num_tokens=2048, seed=0, path_seed=1, **knobs)
        for W in sizes:
            R = 32 if (256 + 32) % W == 0 else -(-32 // W) * W
            yield label, plan, test, EpShape(256, 256 + R, 8, W // 8, W)
    flame = FLAME.resolve()
    if flame.exists():
        topk = np.load(flame)["topk"].astype(np.int64)
        for W in (16, 32):
            yield "FLAME-MoE trace", topk[:1024], topk[1024:], EpShape(64, 64 + W, 8, W // 8, W)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=58)
    ap.add_argument("--sizes", default="32,64,128")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    t0, c0 = time.time(), cpu_s()
    for label, plan, test, s in instances(args.layers, [int(x) for x in args.sizes.split(",")]):
        E = s.num_experts
        w = np.stack([np.bincount(plan[:, li, :].ravel(), minlength=E) for li in range(plan.shape[1])]).astype(float)
        co = coact_from_topk(plan, E)
        base = None
        for name, fn in EP_PEERS.items():
            c = cpu_s()
            phy = fn(w, co, plan, s, 0)
            c = cpu_s() - c
            assert all(np.bincount(phy[li], minlength=E).min() >= 1 for li in range(phy.shape[0])), name
            m = score(phy, test, s.num_gpus, s.num_nodes)
            m["plan_gpu_max_over_mean"] = float((gpu_load_LG(w, phy, s.num_gpus).max(1)
                                                  / gpu_load_LG(w, phy, s.num_gpus).mean(1)).mean())
            base = base or m
            m["cross_vs_eplb"] = m["cross_node_bytes_per_token"] / base["cross_node_bytes_per_token"]
            rows.append({"instance": label, "ep": s.num_gpus, "redundant": s.num_physical - E, "peer": name,
                         "cpu_s": round(c, 2), **{k: round(v, 4) for k, v in m.items()}})
            print(f"| {label} | EP{s.num_gpus} R={s.num_physical - E} | {name} | {m['plan_gpu_max_over_mean']:.3f} | "
                  f"{m['gpu_max_over_mean']:.3f} | {m['ranks_touched']:.2f} | {m['nodes_touched']:.2f} | "
                  f"{m['cross_node_bytes_per_token'] / 1e6:.3f} | {m['cross_vs_eplb']:.3f} | {c:.1f} |", flush=True)
    print(f"total: wall {time.time() - t0:.0f} s, CPU {cpu_s() - c0:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
