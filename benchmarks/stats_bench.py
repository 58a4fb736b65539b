"""Benchmark: aggregate a 10-million-record JSON-lines routing trace (issue 4's target: >= 1 M records/s on
2 cores, peak memory < 1 GB).

    python benchmarks/stats_bench.py                      # 10,027,008 records, all cores this process may use
    python benchmarks/stats_bench.py --cpus 0,1           # pinned to 2 cores (what the target is stated on)
    python benchmarks/stats_bench.py --records 1000000 --jobs 1
    python benchmarks/stats_bench.py --cli --records 2000014    # issue 16: `moeplace stats build`, start-up included

--cli runs the command itself in a child process (`python -m moeplace stats build TRACE --num-experts 64`) and
reports its wall time from spawn to exit, its CPU user + sys (workers included), the load average before
and after and the machine; --records need not be a multiple of 4,096 there (the last copy is cut short,
leaving one token with only some of its layers, which the counts check accounts for).

The trace is the real FLAME-MoE sample in tests/data/routing (512 tokens x 8 layers, top-6 of 64 experts,
gate weights included) tiled with fresh token ids, written in the same line format as the shared
`encoder_2048tok.jsonl`. It is generated once under --dir and reused. Correctness is checked: every count
of the result must equal the copies times the counts of the sample. Peak memory is the largest sum, over
the reading process and its workers, of proportional set size (PSS; RSS where /proc has no smaps_rollup),
sampled every 20 ms. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SAMPLE = REPO / "tests" / "data" / "routing" / "flame-moe-290m" / "encoder_512tok.npz"


def generate(path: Path, copies: int, records: int | None = None) -> None:
    """`copies` tilings of the sample; with `records`, cut after that many lines."""
    z = np.load(SAMPLE)
    topk, weights, layers = z["topk"], z["weights"], z["layers"]
    T, L, _ = topk.shape
    tails = [[f', "layer": {layers[li]}, "experts": [{", ".join(map(str, topk[t, li]))}], "weights": '
              f'[{", ".join(f"{w:.6g}" for w in weights[t, li])}]}}\n' for li in range(L)] for t in range(T)]
    tmp = path.with_suffix(".tmp")
    left = copies * T * L if records is None else records
    with open(tmp, "w") as fh:
        for c in range(-(-left // (T * L))):
            base = c * T
            lines = [f'{{"token": {base + t}' + tail for t in range(T) for tail in tails[t]]
            fh.write("".join(lines[:left]))
            left -= min(left, len(lines))
    os.replace(tmp, path)


def expected_counts(records: int):
    """The counts a trace of `records` lines tiled from the sample must give (the last token maybe partial)."""
    from moeplace.traces.kernels import count_paths

    topk = np.load(SAMPLE)["topk"]
    T, L, _ = topk.shape
    copies, rest = divmod(records, T * L)
    c = count_paths(topk, 64)
    total = {f: copies * getattr(c, f) for f in ("load_LE", "coact_LEE", "trans_LEE", "trans_primary_LEE")}
    tokens = copies * T
    if rest:
        n = -(-rest // L)
        present = np.ones((n, L), bool)
        present[n - 1, rest - (n - 1) * L:] = False
        p = count_paths(topk[:n], 64, present)
        total = {f: v + getattr(p, f) for f, v in total.items()}
        tokens += n
    return total, tokens


def run_cli(args) -> None:
    """Issue 16: the command as a user runs it, start-up included."""
    import datetime
    import resource
    import subprocess

    path = Path(args.dir) / f"flame-{args.records}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    gen_s = None
    if not path.exists():
        t = time.perf_counter()
        per_copy = int(np.load(SAMPLE)["topk"].shape[0]) * 8
        generate(path, -(-args.records // per_copy), args.records)
        gen_s = time.perf_counter() - t
    out = Path(args.dir) / "stats.npz"
    cmd = [sys.executable, "-m", "moeplace", "stats", "build", str(path), "--num-experts", "64", "-o", str(out),
           "--force", "--chunk-mb", str(args.chunk_mb)] + (["--jobs", str(args.jobs)] if args.jobs else [])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    load0 = os.getloadavg()
    sampler = MemorySampler()
    sampler.start()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler.stop_flag.set()
    sampler.join()
    load1 = os.getloadavg()
    if proc.returncode:
        raise SystemExit(proc.stderr)
    from moeplace.traces.stats import RoutingStats

    s = RoutingStats.load(out)
    want, tokens = expected_counts(args.records)
    ok = all(np.array_equal(getattr(s, f), v) for f, v in want.items()) and s.num_tokens == tokens
    user, sys_ = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    print(json.dumps({
        "command": " ".join(["moeplace"] + cmd[3:]), "records": args.records, "bytes": path.stat().st_size,
        "wall_s": round(wall, 3), "records_per_s": round(args.records / wall),
        "cpu_user_s": round(user, 2), "cpu_sys_s": round(sys_, 2), "cpu_s": round(user + sys_, 2),
        "records_per_cpu_s": round(args.records / (user + sys_)),
        "peak_pss_mb": round(sampler.peak_pss_kb / 1024, 1), "peak_rss_mb": round(sampler.peak_rss_kb / 1024, 1),
        "load_before": [round(x, 2) for x in load0], "load_after": [round(x, 2) for x in load1],
        "counts_correct": ok, "generated_in_s": None if gen_s is None else round(gen_s, 1),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "usable_cpus": sorted(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
    }))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(x) for x in fh.read().split())
        except OSError:
            pass
    return out


def _mem_kb(pid: int) -> tuple[int, int]:
    """(PSS or RSS, RSS) of one process, kB."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
        return pss, rss
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return rss, rss


class MemorySampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_pss_kb = self.peak_rss_kb = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self.stop_flag.is_set():
            pss = rss = 0
            for pid in _tree(me):
                a, b = _mem_kb(pid)
                pss, rss = pss + a, rss + b
            self.peak_pss_kb, self.peak_rss_kb = max(self.peak_pss_kb, pss), max(self.peak_rss_kb, rss)
            time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=10_027_008, help="records (a multiple of 4,096)")
    ap.add_argument("--dir", default="/tmp/moeplace-bench", help="where the generated trace is kept")
    ap.add_argument("--jobs", type=int, default=None, help="worker processes [default: the usable cores]")
    ap.add_argument("--cpus", default=None, help="pin to these CPUs first, e.g. 0,1")
    ap.add_argument("--chunk-mb", type=float, default=16)
    ap.add_argument("--cli", action="store_true", help="time `moeplace stats build` itself, start-up included")
    args = ap.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, {int(x) for x in args.cpus.split(",")})
    if args.cli:
        run_cli(args)
        return
    from moeplace.traces.read import ReadOptions, read_stats
    from moeplace.traces.stats import RoutingStats
    from moeplace.traces.stream import default_jobs

    per_copy = int(np.load(SAMPLE)["topk"].shape[0]) * 8
    copies = max(1, args.records // per_copy)
    path = Path(args.dir) / f"flame-tiled-{copies * per_copy}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    gen_s = None
    if not path.exists():
        t = time.perf_counter()
        generate(path, copies)
        gen_s = time.perf_counter() - t
    sampler = MemorySampler()
    sampler.start()
    t = time.perf_counter()
    cpu0 = os.times()
    s = read_stats(path, ReadOptions(num_experts=64, jobs=args.jobs, chunk_bytes=int(args.chunk_mb * (1 << 20))))
    wall = time.perf_counter() - t
    cpu1 = os.times()
    sampler.stop_flag.set()
    sampler.join()
    ref = RoutingStats.from_paths(np.load(SAMPLE)["topk"], 64)
    ok = all(np.array_equal(getattr(s, f), copies * getattr(ref, f))
             for f in ("load_LE", "coact_LEE", "trans_LEE", "trans_primary_LEE")) and s.num_tokens == copies * 512
    records = copies * per_copy
    import msgspec

    print(json.dumps({
        "records": records, "bytes": path.stat().st_size, "wall_s": round(wall, 3),
        "records_per_s": round(records / wall), "peak_pss_mb": round(sampler.peak_pss_kb / 1024, 1),
        "peak_rss_mb": round(sampler.peak_rss_kb / 1024, 1),
        "cpu_s": round((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system) + (cpu1.children_user - cpu0.children_user)
                       + (cpu1.children_system - cpu0.children_system), 2),
        "jobs": args.jobs or default_jobs(), "usable_cpus": sorted(os.sched_getaffinity(0)),
        "counts_correct": ok, "generated_in_s": None if gen_s is None else round(gen_s, 1),
        "python": platform.python_version(), "numpy": np.__version__, "msgspec": msgspec.__version__,
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
