"""The token stream a run pushes through the plan: routing per step, gate weights, homes, replicas.

Routing is drawn from the plan's statistics (the synthetic generator with the plan's knobs and seed, so the
expert popularity and the layer-to-layer structure are the plan's) or replayed from a per-token trace.
Every rank draws the same routing from the same seed: the gate is simulated, so routing metadata never
travels; a real gate would add k ids and k weights per token (16 B against 14,336 B in the seed).

    paths_TLK   int32   [tokens, moe_layers, k]   experts in gate order (primary first)
    gates_TLK   float32 [tokens, moe_layers, k]   softmax weights, descending, summing to 1 per (t, l)
    rank_TLK    int64   [tokens, moe_layers, k]   the rank that runs expert paths[t, l, j] for token t
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moeplace.errors import InputError
from moeplace.launch.manifest import Manifest, trace_file_problem
from moeplace.traces.synth import synthesize_paths
from moeplace.traces.topk import check_topk, read_topk

SYNTH_KNOBS = ("skew", "coact", "affinity", "cluster_size")


@dataclass(frozen=True, eq=False)
class StepRouting:
    paths_TLK: np.ndarray
    gates_TLK: np.ndarray

    @property
    def num_tokens(self) -> int:
        return int(self.paths_TLK.shape[0])


def item_ranks(manifest: Manifest) -> dict[tuple[int, int], tuple[int, ...]]:
    """(moe_layer, expert) -> the ranks holding it, by replica index; every expert must be placed."""
    out: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for entry in manifest.ranks:
        for ref in entry.experts:
            out.setdefault((ref.moe_layer, ref.expert), []).append((ref.replica, entry.rank))
    model = manifest.model
    for ml in range(model.num_moe_layers):
        for e in range(model.num_experts):
            if (ml, e) not in out:
                raise InputError(f"expert {e} of MoE layer {ml} is on no rank", source="manifest.json", field="ranks")
    return {key: tuple(r for _, r in sorted(v)) for key, v in out.items()}


def rank_table(manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
    """Dense replica table: `ranks_LER` int64 [L, E, R] (padded with -1) and `replicas_LE` int64 [L, E]."""
    by_item = item_ranks(manifest)
    L, E = manifest.model.num_moe_layers, manifest.model.num_experts
    R = max(len(v) for v in by_item.values())
    ranks = np.full((L, E, R), -1, dtype=np.int64)
    counts = np.zeros((L, E), dtype=np.int64)
    for (ml, e), rs in by_item.items():
        ranks[ml, e, :len(rs)] = rs
        counts[ml, e] = len(rs)
    return ranks, counts


def rank_nodes(manifest: Manifest) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(node [world], local GPU [world]) of every rank, ranks grouped into nodes by their host; (None, None)
    when the plan was made without node-level dedup (the runtime then sends GPU to GPU, as that objective
    prices it)."""
    if not manifest.dedup:
        return None, None
    node_of_host = {h: i for i, h in enumerate(manifest.hosts)}
    node = np.zeros(manifest.world_size, dtype=np.int64)
    local = np.zeros(manifest.world_size, dtype=np.int64)
    for r in manifest.ranks:
        node[r.rank], local[r.rank] = node_of_host.get(r.host, r.node), r.local_gpu
    return node, local


def assign_ranks(paths_TLK: np.ndarray, ranks_LER: np.ndarray, replicas_LE: np.ndarray, token_ids_T: np.ndarray
                 ) -> np.ndarray:
    """Replica r = token id mod the expert's replica count: deterministic and balanced across replicas."""
    L = paths_TLK.shape[1]
    lay = np.arange(L)[None, :, None]
    n = replicas_LE[lay, paths_TLK]
    pick = token_ids_T[:, None, None] % n
    return ranks_LER[lay, paths_TLK, pick]


def gate_weights(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """Seeded softmax gate weights, descending along k (the primary has the largest weight)."""
    rng = np.random.default_rng([seed, 0x6A7E])
    logits = -np.sort(-rng.standard_normal(shape), axis=2)
    w = np.exp(logits - logits[:, :, :1])
    return (w / w.sum(axis=2, keepdims=True)).astype(np.float32)


def trace_path(name: str, base: Path | None) -> Path:
    """The manifest's trace inside its folder `base`; a name or a link leading out of it is refused."""
    problem = trace_file_problem(name)
    root = (base or Path.cwd()).resolve()
    path = root / name
    if problem is None and not path.resolve().is_relative_to(root):
        problem = f"trace_file {name[:60]!r} leads out of the manifest's folder (a symbolic link?)"
    if problem:
        raise InputError(problem, source="manifest.json", field="routing.trace_file")
    return path


def draw_routing(manifest: Manifest, num_tokens: int, num_steps: int, *, base: Path | None = None
                 ) -> list[StepRouting]:
    """`num_steps` distinct steps of `num_tokens` tokens each (the run cycles through them)."""
    model = manifest.model
    L, E, k = model.num_moe_layers, model.num_experts, model.top_k
    src = manifest.routing
    total = num_tokens * num_steps
    if src.kind == "trace":
        if not src.trace_file:
            raise InputError("routing.kind is 'trace' but no trace_file is given", source="manifest.json",
                             field="routing.trace_file")
        path = trace_path(src.trace_file, base)
        topk = read_topk(path)
        check_topk(topk, L, E, k, str(path))
        idx = np.arange(total) % topk.shape[0]
        paths = topk[idx].astype(np.int32)
    else:
        knobs = {key: src.knobs[key] for key in SYNTH_KNOBS if key in src.knobs}
        if "cluster_size" in knobs:
            knobs["cluster_size"] = int(knobs["cluster_size"])
        paths = synthesize_paths(L, E, k, num_tokens=total, seed=src.seed, **knobs)
    gates = gate_weights(paths.shape, src.seed)
    return [StepRouting(paths[s * num_tokens:(s + 1) * num_tokens], gates[s * num_tokens:(s + 1) * num_tokens])
            for s in range(num_steps)]
