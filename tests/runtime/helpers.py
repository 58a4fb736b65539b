"""Manifests for runtime tests, built directly from the schema, and a spawner with hard timeouts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from moeplace.launch.manifest import Buffers, ExpertRef, Manifest, RankEntry, RoutingSource, Timeouts
from moeplace.placement.schema import ModelSpec

REPO = Path(__file__).resolve().parents[2]


def tiny_model(**over) -> ModelSpec:
    """2 MoE layers (model layers 2, 3) x 4 experts, top-2, hidden 32, expert hidden 16."""
    spec = dict(name="tiny", num_layers=3, dense_layers=(1,), num_experts=4, top_k=2, hidden=32, expert_hidden=16,
                num_heads=2, head_dim=16)
    spec.update(over)
    return ModelSpec(**spec)


def manifest(flow: str = "chain", *, nodes: int = 1, gpus_per_node: int = 4, model: ModelSpec | None = None,
             placement=None, tokens: int = 48, micro_batches: int = 2, port: int = 29500, collective_s: float = 30.0,
             startup_s: float = 60.0, seed: int = 3) -> Manifest:
    """Expert e of MoE layer l on rank (e + l) mod world unless `placement` maps (l, e) -> rank(s)."""
    model = model or tiny_model()
    world = nodes * gpus_per_node
    hosts = [f"node{i:02d}" for i in range(nodes)]
    experts: dict[int, list[ExpertRef]] = {r: [] for r in range(world)}
    for ml, layer in enumerate(model.moe_layer_numbers):
        for e in range(model.num_experts):
            where = placement(ml, e) if placement else (e + ml) % world
            for rep, r in enumerate([where] if isinstance(where, int) else where):
                experts[r].append(ExpertRef(moe_layer=ml, layer=layer, expert=e, replica=rep))
    ranks = [RankEntry(rank=r, host=hosts[r // gpus_per_node], node=r // gpus_per_node, local_gpu=r % gpus_per_node,
                       experts=experts[r]) for r in range(world)]
    return Manifest(plan_sha256="0" * 64, model=model, flow=flow, dedup=True, world_size=world,
                    gpus_per_node=gpus_per_node, hosts=hosts, master_addr="127.0.0.1", master_port=port,
                    buffers=Buffers(tokens_per_step=tokens, capacity_tokens_per_peer=tokens, micro_batches=micro_batches),
                    routing=RoutingSource(seed=seed), timeouts=Timeouts(startup_s=startup_s, collective_s=collective_s),
                    ranks=ranks)


def write_manifest(m: Manifest, path: Path) -> Path:
    path.write_text(json.dumps(m.model_dump(mode="json"), indent=1))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Only a hang guard, far above every timeout the workers keep themselves (startup_s, collective_s): what a
# test asserts is decided by the workers' own timeouts, never by this one racing them on a busy machine.
SPAWN_GUARD_S = 900.0


def spawn(m: Manifest, path: Path, out: Path, *args: str, env: dict | None = None, per_rank_env=None,
          timeout_s: float = SPAWN_GUARD_S) -> list[tuple[int, str]]:
    """Start every rank of `m` as `python -m moeplace.runtime.worker`; (exit code, stderr) per rank."""
    port = free_port()
    procs = []
    for entry in m.ranks:
        e = dict(os.environ, MOEPLACE_HOST=entry.host, LOCAL_RANK=str(entry.local_gpu), WORLD_SIZE=str(m.world_size),
                 MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), CUDA_VISIBLE_DEVICES="",
                 PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
        e.update(env or {})
        if per_rank_env:
            e.update(per_rank_env(entry.rank))
        procs.append(subprocess.Popen([sys.executable, "-m", "moeplace.runtime.worker", "--manifest", str(path),
                                       "--out", str(out), *args], env=e, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    results = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError(f"a worker hung past {timeout_s} s") from None
        results.append((p.returncode, err.strip()))
    return results
