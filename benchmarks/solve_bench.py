"""`moeplace solve` on the embedded defaults: wall time, quality against the baselines, determinism.

    python benchmarks/solve_bench.py            # the seed defaults, twice (determinism), and the FLAME trace
    python benchmarks/solve_bench.py --conditions   # the seed default idle, beside 2 busy processes, 1 vs 2 cores

Targets (issue 2): the defaults finish within 60 s on 2 cores with an objective below layer-major's, and the
same seed writes a byte-identical plan.json. Issue 13: the default seed solve in at most 20 s of CPU (user +
sys of the whole command) with an objective no worse than 2,182,702, and the same plan.json (sha256) idle,
beside two busy processes (`yes > /dev/null`), and on 1 core (`taskset -c 0`) or 2. Prints markdown tables
for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import shutil
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


def timed(args: list[str], cores: str | None = None) -> tuple[float, float]:
    """(wall s, CPU s = user + sys of the command and its children) of `moeplace ARGS`, optionally pinned."""
    pin = ["taskset", "-c", cores] if cores else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([*pin, sys.executable, "-m", "moeplace", *args], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


CONDITIONS = (  # (label, taskset cores or None, busy processes beside the solve)
    ("idle, 2 cores", None, 0),
    ("2 busy processes, 2 cores", None, 2),
    ("idle, 1 core (taskset -c 0)", "0", 0),
    ("2 busy processes, 1 core (taskset -c 0)", "0", 2),
)


def conditions() -> None:
    """The seed default under each condition: CPU and wall seconds, stop, objective and the plan's sha256."""
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        raise SystemExit("needs taskset and 2 cores")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (label, cores, busy) in enumerate(CONDITIONS):
            out = Path(tmp) / f"plan{k}"
            hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(busy)]
            try:
                load = os.getloadavg()[0]
                wall, cpu = timed(["solve", "--topology", "fat-tree", "--out", str(out)], cores)
            finally:
                for h in hogs:
                    h.kill()
                    h.wait()
            s = json.loads((out / "plan.json").read_text())["solver"]
            digest = hashlib.sha256((out / "plan.json").read_bytes()).hexdigest()
            rows.append((label, f"{load:.1f}", f"{cpu:.1f}", f"{wall:.1f}", s["stop_reason"], f"{s['work']:,.0f}",
                         f"{s['objective']:,.0f}", digest[:16]))
    print(f"machine: {platform.machine()}, {platform.python_version()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print()
    print("| condition | load (1 min) | CPU s | wall s | stop | work | objective | plan.json sha256 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()
    print("byte-identical under every condition:", "yes" if len({r[-1] for r in rows}) == 1 else "NO")


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] + " Needs only moeplace itself (no torch).")
    ap.add_argument("--conditions", action="store_true",
                    help="the seed default idle, beside 2 busy processes, on 1 and 2 cores (determinism under load)")
    if ap.parse_args().conditions:
        conditions()
        return
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
