"""Node-level dedup in the runtime: the bytes its transports count against the objective's, on CPU.

    python benchmarks/runtime_dedup_check.py [--out DIR] [--flow chain|ep] [--tokens N]

Plans examples/tiny.toml (4 MoE layers x 8 experts, top-2) on 2 nodes x 2 GPUs, two experts of every
layer per GPU (`--balance-per-layer`, so a token's experts do span GPUs and nodes), starts the four workers
as gloo processes on this host (each told its host by MOEPLACE_HOST, so the runtime groups the ranks into
the plan's two nodes), checks the result against the float64 reference, and compares the cross-node
bytes the runtime's transports counted (`measured.json`) with the objective's (`placement.cost.evaluate`)
on the same plan and the exact routing the workers drew. The last line is a JSON object; with the chain
flow the two are equal (exit code 1 when they differ by more than 1%). ep: the objective charges the
combine without dedup, so the runtime measures less (`runmodel/tiers.py`); the check then only bounds it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_check(out: Path, flow: str = "chain", tokens: int = 512, steps: int = 2, timeout_s: float = 300.0) -> dict:
    import numpy as np

    from moeplace.launch.manifest import Manifest
    from moeplace.runmodel.measured import load_measured
    from moeplace.runmodel.tiers import measured_bytes, network, predicted_bytes, row_bytes
    from moeplace.runmodel.validation import load_run_plan
    from moeplace.runmodel.workload import draw_routing

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    plan_dir = out / "plan"
    subprocess.run([sys.executable, "-m", "moeplace", "solve", "--model", str(REPO / "examples" / "tiny.toml"),
                    "--nodes", "2", "--gpus-per-node", "2", "--experts-per-gpu", "8", "--flow", flow,
                    "--balance-per-layer", "--work-limit", "2000", "--out", str(plan_dir), "--force", "-q"], check=True, env=env)
    manifest = Manifest.model_validate_json((plan_dir / "manifest.json").read_text())
    port, run_dir = _free_port(), out / "run"
    args = ["--manifest", str(plan_dir / "manifest.json"), "--out", str(run_dir), "--device", "cpu",
            "--tokens", str(tokens), "--steps", str(steps), "--warmup", "1", "--routing-steps", str(steps), "--check"]
    procs = []
    for entry in manifest.ranks:
        e = dict(env, MOEPLACE_HOST=entry.host, LOCAL_RANK=str(entry.local_gpu), WORLD_SIZE=str(manifest.world_size),
                 MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, "-m", "moeplace.runtime.worker", *args], env=e,
                                      stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + timeout_s
    errors = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise SystemExit(f"runtime_dedup_check: a worker hung past {timeout_s:.0f} s") from None
        if p.returncode != 0:
            errors.append(err.strip().splitlines()[-1] if err.strip() else f"exit code {p.returncode}")
    if errors:
        raise SystemExit(f"runtime_dedup_check: a worker failed: {errors[0]}")
    measured = load_measured(run_dir / "measured.json")
    pp = load_run_plan(plan_dir)
    routing = draw_routing(manifest, tokens, steps, base=plan_dir)
    paths = np.concatenate([r.paths_TLK for r in routing])  # every step of the timed loops cycles through these
    predicted = predicted_bytes(pp, tokens, row_bytes(measured), paths_TLK=paths)
    by_tier = measured_bytes(pp, measured)
    meas_net, pred_net = network(by_tier), network(predicted)
    plain = gpu_to_gpu_network_bytes(manifest, routing, tokens, row_bytes(measured))
    return {"flow": flow, "nodes": 2, "gpus_per_node": 2, "tokens_per_step": tokens, "dedup": measured.dedup,
            "check_passed": bool(measured.check and measured.check.passed),
            "measured_bytes_by_tier": {k: round(v, 1) for k, v in by_tier.items()},
            "predicted_bytes_by_tier": {k: round(v, 1) for k, v in predicted.items()},
            "measured_cross_node_bytes": round(meas_net, 1), "predicted_cross_node_bytes": round(pred_net, 1),
            "ratio": round(meas_net / pred_net, 6) if pred_net else None,
            "gpu_to_gpu_cross_node_bytes": round(plain, 1)}


def gpu_to_gpu_network_bytes(manifest, routing, tokens: int, row_b: int) -> float:
    """Cross-node bytes per step the same schedules move without node-level dedup (numpy, nothing runs)."""
    import numpy as np

    from moeplace.runmodel.schedule import rank_schedule
    from moeplace.runmodel.workload import assign_ranks, rank_table

    ranks_LER, reps = rank_table(manifest)
    node = {e.rank: e.node for e in manifest.ranks}
    ids = np.arange(tokens, dtype=np.int64)
    parts = np.array_split(ids, max(1, min(manifest.buffers.micro_batches, tokens)))
    rows = 0
    for r in routing:
        rank_TLK = assign_ranks(r.paths_TLK, ranks_LER, reps, ids)
        for e in manifest.ranks:
            slots = {(x.moe_layer, x.expert): i for i, x in enumerate(e.experts)}
            for p in parts:
                s = rank_schedule(manifest.flow, e.rank, manifest.world_size, p, r.paths_TLK[p], rank_TLK[p],
                                  r.gates_TLK[p], slots)
                rows += sum(rr.size for lay in s.layers for tr in lay.transfers
                            for peer, rr in zip(tr.send_peers, tr.send_rows) if node[peer] != node[e.rank])
    return rows * row_b / len(routing)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="keep the plan and the run here [default: a temp dir]")
    ap.add_argument("--flow", choices=("chain", "ep"), default="chain")
    ap.add_argument("--tokens", type=int, default=512)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="moeplace-dedup-") as tmp:
        res = run_check(a.out or Path(tmp), a.flow, a.tokens)
    ok = res["check_passed"] and res["ratio"] is not None and (
        abs(res["ratio"] - 1.0) <= 0.01 if a.flow == "chain" else res["ratio"] <= 1.0 + 1e-9)
    for key in ("measured_bytes_by_tier", "predicted_bytes_by_tier"):
        print(f"{key}: {res[key]}")
    print(json.dumps(res))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
