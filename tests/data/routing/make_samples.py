"""Regenerate the small samples in this directory from the real data in ../shared/data/routing.

    python tests/data/routing/make_samples.py

Every sample is cut from, or re-encoded from, the real FLAME-MoE-290M trace (tokens 0..511 of
encoder_2048tok), so the tests can check each reader against the statistics of the same tokens read from
the original .npz. The SGLang and TensorRT-LLM files use the layouts those engines write (see
docs/traces.md); safetensors is written by hand (8-byte header length, JSON header, raw data).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2].parent / "shared" / "data" / "routing"
TOKENS = 512


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    codes = {np.dtype("int32"): "I32", np.dtype("int64"): "I64", np.dtype("float32"): "F32"}
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": codes[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(blobs))


def main() -> None:
    src = SHARED / "flame-moe-290m"
    z = np.load(src / "encoder_2048tok.npz")
    topk, weights, layers, seq = z["topk"][:TOKENS], z["weights"][:TOKENS], z["layers"], z["sequence"][:TOKENS]
    flame = HERE / "flame-moe-290m"
    flame.mkdir(exist_ok=True)
    np.savez_compressed(flame / "encoder_512tok.npz", topk=topk, weights=weights, layers=layers,
                        num_experts=z["num_experts"], sequence=seq)
    lines = (src / "encoder_2048tok.jsonl").read_text().splitlines()
    (flame / "encoder_512tok.jsonl").write_text("\n".join(lines[: TOKENS * len(layers)]) + "\n")
    olmoe = HERE / "olmoe"
    olmoe.mkdir(exist_ok=True)
    for name in ("olmoe-1b-7b_c4.npz", "mixtral-8x7b-v0.1_c4.npz"):
        shutil.copyfile(SHARED / "olmoe" / name, olmoe / name)
    sglang_samples(topk, seq)
    trtllm_samples(topk, seq, layers)
    csv_samples(topk, layers)


def sglang_samples(topk: np.ndarray, seq: np.ndarray) -> None:
    """per_token mode: 2 forward passes (sequences 0-1 and 2-3), 10 model layers (0-1 dense: all -1),
    top-k padded to 8 with -1, 72 physical slots (64 experts permuted + 8 replicas); stat mode: counts."""
    import torch

    out = HERE / "sglang"
    out.mkdir(exist_ok=True)
    E, P, L_model = 64, 72, 10
    p2l = np.empty((L_model, P), np.int64)
    l2p = np.empty((L_model, E), np.int64)
    for layer in range(L_model):
        perm = (np.arange(E) * 37 + layer) % E
        p2l[layer, :E] = perm
        p2l[layer, E:] = np.arange(8)
        l2p[layer, perm] = np.arange(E)
    records = []
    for fp, seqs in enumerate(((0, 1), (2, 3))):
        rows = np.flatnonzero(np.isin(seq, seqs))
        n = rows.size
        ids = np.full((L_model, n, 8), -1, np.int32)
        for i, layer in enumerate(range(2, 10)):
            logical = topk[rows, i]
            phys = l2p[layer][logical]
            replica = (logical < 8) & (np.arange(n)[:, None] % 2 == 1)
            ids[layer, :, :6] = np.where(replica, E + logical, phys)
        count = np.zeros((L_model, P), np.int32)
        for layer in range(L_model):
            v = ids[layer][ids[layer] >= 0]
            count[layer] = np.bincount(v, minlength=P)
        records.append({"forward_pass_id": 40 + fp, "rank": 0, "gatherer_key": "primary",
                        "input_ids": list(range(n)), "positions": [int(x) % 64 for x in range(n)],
                        "extend_seq_lens": [64] * (n // 64), "forward_mode": 1,
                        "topk_ids_of_layer": torch.from_numpy(ids), "misc_objects": [],
                        "global_physical_count": torch.from_numpy(count)})
    torch.save({"records": records, "last_physical_to_logical_map": torch.from_numpy(p2l)},
               out / "expert_distribution_recorder_1700000000.0_0.pt")
    logical = np.zeros((4, L_model, E), np.int32)
    for step in range(4):
        rows = np.flatnonzero(seq == step)
        for i, layer in enumerate(range(2, 10)):
            logical[step, layer] = np.bincount(topk[rows, i].ravel(), minlength=E)
    torch.save({"rank": 0, "logical_count": torch.from_numpy(logical), "average_utilization_rate_over_window": None},
               out / "expert_distribution_recorder_1700000001.0.pt")


def trtllm_samples(topk: np.ndarray, seq: np.ndarray, layers: np.ndarray) -> None:
    """EXPERT_STATISTIC_PATH of 2 ranks x 2 iterations (100, 101); rank r, iteration i holds sequence 2i + r."""
    out = HERE / "trtllm"
    out.mkdir(exist_ok=True)
    E, k = 64, 6
    (out / "meta_info.json").write_text(json.dumps({"num_experts": E, "num_experts_per_token": k}))
    for rank in (0, 1):
        counts, cooc, tokens = {}, {}, {}
        for it in (100, 101):
            rows = np.flatnonzero(seq == 2 * (it - 100) + rank)
            for i, layer in enumerate(layers):
                sel = topk[rows, i].astype(np.int32)
                key = f"{it}_{int(layer)}"
                counts[key] = np.bincount(sel.ravel(), minlength=E).astype(np.int32)
                c = np.zeros((E, E), np.int32)
                for row in sel:
                    c[np.ix_(row, row)] += 1
                cooc[key] = c
                tokens[key] = sel
        write_safetensors(out / f"rank{rank}.safetensors", counts)
        write_safetensors(out / f"cooccurrence_rank{rank}.safetensors", cooc)
        write_safetensors(out / f"token_selected_experts_rank{rank}.safetensors", tokens)


def csv_samples(topk: np.ndarray, layers: np.ndarray) -> None:
    """An EPLB-style wide load matrix of 512 tokens, and the long layout (load + transitions) of 16 tokens."""
    import sys

    sys.path.insert(0, str(HERE.parents[2]))
    from moeplace.traces.csvcounts import to_csv
    from moeplace.traces.stats import RoutingStats

    out = HERE / "csv"
    out.mkdir(exist_ok=True)
    s = RoutingStats.from_paths(topk, 64, layer_numbers=tuple(int(x) for x in layers))
    head = "layer," + ",".join(f"e{e}" for e in range(64))
    body = [f"{layers[i]}," + ",".join(str(x) for x in s.load_LE[i]) for i in range(len(layers))]
    (out / "load_wide.csv").write_text("# top_k=6\n" + head + "\n" + "\n".join(body) + "\n")
    small = RoutingStats.from_paths(topk[:16], 64, layer_numbers=tuple(int(x) for x in layers))
    import dataclasses

    small = dataclasses.replace(small, measured=("load", "trans", "trans_primary"))
    (out / "counts_long.csv").write_text(to_csv(small))


if __name__ == "__main__":
    main()
