"""Regenerate the vLLM, TensorRT-LLM (`_raw`), Megatron (both traces) and more SGLang samples from the committed samples.

    python tests/data/routing/make_engine_samples.py

Each holds the tokens of sequences 0-3 of `flame-moe-290m/encoder_512tok.npz` (256 tokens, MoE layers 2-9,
64 experts, top-6) in the layout the engine writes (docs/traces.md), so the tests compare every reader with
the statistics of the same tokens read from the .npz. Needs numpy, and torch for the Megatron `.pt` files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_samples import write_safetensors  # noqa: E402

E, K = 64, 6


def flame() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(HERE / "flame-moe-290m" / "encoder_512tok.npz") as z:
        return z["topk"], z["sequence"], z["layers"]


def vllm_samples(topk: np.ndarray, seq: np.ndarray) -> None:
    """EPLB load records: 4 steps (one sequence each), 8 MoE layers, 72 physical slots (64 experts permuted
    per layer + replicas of 8); EPLB rearranges before step 2 (a new p2l_map). Routed experts: 4 requests."""
    out = HERE / "vllm"
    out.mkdir(exist_ok=True)
    P, L = 72, topk.shape[1]
    meta = {"record_type": "eplb_load_meta", "version": 1, "model": "flame-moe-290m", "num_ranks": 8,
            "num_groups": 1, "num_nodes": 1, "num_layers": L, "num_redundant_experts": P - E}
    lines = [json.dumps(meta)]
    for step in range(4):
        shift = 0 if step < 2 else 11
        p2l = np.empty((L, P), np.int64)
        for layer in range(L):
            p2l[layer, :E] = (np.arange(E) * 37 + layer + shift) % E
            p2l[layer, E:] = np.arange(8) + shift
        rows = np.flatnonzero(seq == step)
        load = np.zeros((L, P), np.int64)
        for layer in range(L):
            first = np.argsort(p2l[layer, :E])
            for t, e in enumerate(topk[rows, layer].ravel()):
                replicas = np.flatnonzero(p2l[layer] == e)
                load[layer, replicas[t % replicas.size] if replicas.size > 1 else first[e]] += 1
        lines.append(json.dumps({"record_type": "eplb_load_stats", "version": 1, "step": 1000 * (step + 1),
                                 "expert_load": load.tolist(), "p2l_map": p2l.tolist()}))
    (out / "eplb_load_stats.jsonl").write_text("\n".join(lines) + "\n")
    requests = [topk[seq == s].astype(np.int16) for s in range(4)]
    np.savez(out / "routed_experts.npz", *requests)
    np.save(out / "routed_experts_request0.npy", requests[0])


def trtllm_raw_samples(topk: np.ndarray, seq: np.ndarray, layers: np.ndarray) -> None:
    """EXPERT_STATISTIC_PATH of 2 ranks x 2 iterations as TensorRT-LLM writes it today: `rank{r}.safetensors`
    (int64 torch.bincount [64]) and `rank{r}_raw.safetensors` (int32 [tokens, 6]); iteration 100 + i of rank r
    holds sequence 2i + r."""
    out = HERE / "trtllm-raw"
    out.mkdir(exist_ok=True)
    (out / "meta_info.json").write_text(json.dumps({"num_experts": E, "num_experts_per_token": K}))
    for rank in (0, 1):
        counts, raw = {}, {}
        for it in (100, 101):
            rows = np.flatnonzero(seq == 2 * (it - 100) + rank)
            for i, layer in enumerate(layers):
                sel = topk[rows, i].astype(np.int32)
                counts[f"{it}_{int(layer)}"] = np.bincount(sel.ravel(), minlength=E).astype(np.int64)
                raw[f"{it}_{int(layer)}"] = sel
        write_safetensors(out / f"rank{rank}.safetensors", counts)
        write_safetensors(out / f"rank{rank}_raw.safetensors", raw)


def megatron_samples(topk: np.ndarray, seq: np.ndarray, layers: np.ndarray) -> None:
    """Megatron routing trace v1: 2 steps (step s: sequences 2s, 2s+1; 128 tokens from 2 ranks) x 8 MoE layers,
    one trace directory each (`step{s}_layer{l}/manifest.json` + `tensors/*.pt`)."""
    import torch

    out = HERE / "megatron"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    rng = np.random.default_rng(7)
    for step in range(2):
        rows = np.flatnonzero(np.isin(seq, (2 * step, 2 * step + 1)))
        source_rank = (np.arange(rows.size) >= rows.size // 2).astype(np.int32)
        for i, layer in enumerate(layers):
            d = out / f"step{step}_layer{int(layer)}"
            (d / "tensors").mkdir(parents=True)
            ids = torch.from_numpy(topk[rows, i].astype(np.int64))
            g = rng.random((rows.size, K)).astype(np.float32)
            tensors = {"token_ids": ids, "gates": torch.from_numpy(g / g.sum(axis=1, keepdims=True)),
                       "source_rank": torch.from_numpy(source_rank), "expert_ids": ids.clone()}
            listing = {}
            for name, t in tensors.items():
                f = d / "tensors" / f"{name}.pt"
                torch.save(t, f)
                listing[name] = {"file": f"tensors/{name}.pt", "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
                                 "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
            man = {"schema_version": 1, "producer_commit": "sample", "seed": 7, "logical_layer_id": int(layer),
                   "step_id": step, "microbatch_id": 0, "logical_num_tokens": int(rows.size), "num_experts": E,
                   "topk": K, "hidden_size": 1024, "world_size": 2,
                   "original_partition": "rank-major, contiguous per source rank", "workload_id": "flame-seq0-3",
                   "workload_checksum": "sample", "tensors": listing, "extra": {}}
            (d / "manifest.json").write_text(json.dumps(man, indent=2))


def megatron_router_samples(topk: np.ndarray, seq: np.ndarray, layers: np.ndarray) -> None:
    """Megatron-LM `router_trace_rank{N}.jsonl` (RouterTracer, `--moe-routing-trace-path`), 2 ranks x 2 steps:
    rank 0 step s routes sequence 2s in one pass (inference: one record per layer and step); rank 1 step 0
    routes sequence 1 as two microbatches of 32 tokens (training: each layer twice in the step), step 1
    sequence 3. Rank 0's records carry hidden-state sidecar fields; rank 1 ends with an MTP head record."""
    out = HERE / "megatron-router"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    for rank in (0, 1):
        lines, hs = [], 0
        for step in (0, 1):
            rows = np.flatnonzero(seq == 2 * step + rank)
            passes = np.array_split(rows, 2) if (rank, step) == (1, 0) else [rows]
            for part in passes:
                for i, layer in enumerate(layers):
                    ids = topk[part, i].astype(int)
                    rec = {"step": step, "stage": "pre_dispatch", "block": "decoder", "layer": int(layer),
                           "rank": rank, "num_tokens": int(part.size), "topk": K}
                    if rank == 0:
                        rec.update(hs_offset=hs, hs_bytes=part.size * 2048, hs_shape=[int(part.size), 1024])
                        hs += part.size * 2048
                    rec["top_indices"] = ids.tolist()
                    lines.append(json.dumps(rec))
        if rank == 1:
            lines.append(json.dumps({"step": 1, "stage": "pre_dispatch", "block": "mtp", "layer": 0, "rank": 1,
                                     "num_tokens": 2, "topk": K, "mtp_idx": 0,
                                     "top_indices": topk[:2, 0].astype(int).tolist()}))
        (out / f"router_trace_rank{rank}.jsonl").write_text("\n".join(lines) + "\n")


def sglang_samples() -> None:
    """SGLang `per_pass` mode (the per_token sample's records with `global_physical_count` and no ids) and a
    `stat` dump of a running-sum recorder (`logical_count` [layers, experts])."""
    import torch

    out = HERE / "sglang"
    per_token = torch.load(out / "expert_distribution_recorder_1700000000.0_0.pt", weights_only=True)
    records = [{k: v for k, v in r.items() if k != "topk_ids_of_layer"} for r in per_token["records"]]
    torch.save({"records": records, "last_physical_to_logical_map": per_token["last_physical_to_logical_map"]},
               out / "expert_distribution_recorder_1700000002.0_0.pt")
    stat = torch.load(out / "expert_distribution_recorder_1700000001.0.pt", weights_only=True)
    torch.save({"rank": 0, "logical_count": stat["logical_count"].sum(dim=0),
                "average_utilization_rate_over_window": None}, out / "expert_distribution_recorder_1700000003.0.pt")


def main() -> None:
    topk, seq, layers = flame()
    sglang_samples()
    vllm_samples(topk, seq)
    trtllm_raw_samples(topk, seq, layers)
    megatron_samples(topk, seq, layers)
    megatron_router_samples(topk, seq, layers)


if __name__ == "__main__":
    main()
