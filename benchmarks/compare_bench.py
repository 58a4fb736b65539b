"""Time the default `moeplace compare` (target: under 30 s on 2 cores), as a user runs it.

    python benchmarks/compare_bench.py [--repeat 3] [--out /tmp/compare-bench]

Each run is a fresh `moeplace compare --out DIR --force -q` process (imports, synthetic statistics, three
placements by the solver, 2 hardware worlds x 5 designs x 2 scales x 16 workload points, the claims, the
three files). Prints wall time, the process's CPU time (user + system) and the load average before the run,
as Markdown table rows for benchmarks/RESULTS.md. On a machine shared with other work, wall time includes
waiting for a core; CPU time is the comparable figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(out: Path) -> tuple[float, float, float]:
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "moeplace", "compare", "--out", str(out), "--force", "-q"], check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=None, help="output directory (default: a temporary one)")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="compare-bench-")) / "cmp"
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print("| date | machine | run | wall s | CPU s | load average before |")
    print("|---|---|---:|---:|---:|---:|")
    for i in range(args.repeat):
        wall, cpu, load = run_once(out)
        print(f"| {time.strftime('%Y-%m-%d')} | {machine} | {i + 1} | {wall:.1f} | {cpu:.1f} | {load:.1f} |",
              flush=True)
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    print("files: " + ", ".join(f"{k} {v:,} B" for k, v in sizes.items()))


if __name__ == "__main__":
    main()
