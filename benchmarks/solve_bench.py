"""`moeplace solve` on the embedded defaults: wall time, quality against the baselines, determinism.

    python benchmarks/solve_bench.py            # the seed defaults, twice (determinism), and the FLAME trace

Targets (issue 2): the defaults finish within 60 s on 2 cores with an objective below layer-major's, and the
same seed writes a byte-identical plan.json. Prints a markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FLAME = REPO.parent / "shared" / "data" / "routing" / "flame-moe-290m" / "encoder_2048tok.npz"


def run(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "moeplace", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        times = [run(["solve", "--topology", "fat-tree", "--out", str(tmp / f"plan{i}")]) for i in range(2)]
        plan = json.loads((tmp / "plan0" / "plan.json").read_text())
        same = (tmp / "plan0" / "plan.json").read_bytes() == (tmp / "plan1" / "plan.json").read_bytes()
        s, b = plan["solver"], plan["baselines"]
        rows.append(("seed defaults (1,856 experts, 232 nodes, fat-tree)", f"{min(times):.1f} s", s["stop_reason"],
                     f"{s['objective']:,.0f}", f"{b['layer-major']['objective']:,.0f}",
                     f"{(s['objective'] / b['layer-major']['objective'] - 1) * 100:+.1f}%",
                     f"{plan['cost']['cross_node_bytes_per_token']:,.0f}",
                     f"{b['layer-major']['cross_node_bytes_per_token']:,.0f}", f"{s['bound']:,.0f}",
                     f"{s['gap'] * 100:.1f}%", "yes" if same else "NO"))
        if FLAME.is_file():
            z = np.load(FLAME)
            np.savez(tmp / "train.npz", topk=z["topk"][z["sequence"] < 16])
            np.savez(tmp / "held.npz", topk=z["topk"][z["sequence"] >= 16])
            t = run(["solve", "--model", str(REPO / "examples" / "flame-moe-290m.toml"), "--nodes", "64",
                     "--stats", str(tmp / "train.npz"), "--no-emit", "--out", str(tmp / "flame")])
            out = subprocess.run([sys.executable, "-m", "moeplace", "evaluate", str(tmp / "flame"), "--trace",
                                  str(tmp / "held.npz"), "--json"], check=True, capture_output=True, text=True).stdout
            m = json.loads(out)["metrics"]
            plan = json.loads((tmp / "flame" / "plan.json").read_text())
            s = plan["solver"]
            rows.append(("FLAME-MoE (512 experts, 64 nodes), planned on seq 0-15, scored on 16-31", f"{t:.1f} s",
                         s["stop_reason"], f"{m['objective']:,.0f} (held out)", "", "",
                         f"{m['cross_node_bytes_per_token']:,.0f} (held out)", "969,108 (held out)",
                         f"{s['bound']:,.0f} (train)", f"{s['gap'] * 100:.1f}% (train)", ""))
    print(f"machine: {platform.machine()}, {platform.python_version()}, "
          f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, "
          f"{time.strftime('%Y-%m-%d')}")
    print()
    print("| instance | wall | stop | objective | layer-major | vs layer-major | cross-node B/token | "
          "layer-major cross-node | bound | gap | byte-identical rerun |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
