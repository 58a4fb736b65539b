"""Per-token routing traces as arrays: `topk` int [tokens, moe_layers, k], experts in gate order.

`.npz`/`.npy` arrays are read by the streaming reader the statistics builder uses (`traces.arrays.topk_blocks`:
no pickles, corrupt and truncated files named); any other per-token format moeplace reads (JSON
lines, SGLang per-token dumps, TensorRT-LLM token_selected_experts) goes through `moeplace.traces.read`,
which returns the tokens that have a record at every layer, in file order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moeplace.errors import InputError
from moeplace.traces.arrays import topk_blocks


def read_topk(path: str | Path, *, num_experts: int | None = None) -> np.ndarray:
    """Token paths [tokens, layers, k]; `num_experts` is needed for JSON lines (they do not carry it)."""
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", source=str(p))
    if p.is_dir() or p.suffix.lower() not in (".npz", ".npy"):
        return _read_other(p, num_experts)
    shape, blocks = topk_blocks(p)
    if len(shape) != 3:
        raise InputError(f"must be [tokens, moe_layers, k], got shape {shape}", source=str(p), field="topk")
    if shape[0] == 0:
        raise InputError("holds no tokens", source=str(p), field="topk")
    return np.concatenate(list(blocks))


def _read_other(p: Path, num_experts: int | None) -> np.ndarray:
    from moeplace.traces.read import ReadOptions, detect_format, read_stats

    fmt = detect_format(p)
    if fmt not in ("jsonl", "sglang", "trtllm"):
        raise InputError(f"a {fmt} file holds no per-token rows", source=str(p))
    stats = read_stats(p, ReadOptions(num_experts=num_experts, keep_paths=None), fmt)
    if not stats.has("paths"):
        raise InputError("holds no token with a record at every layer", source=str(p))
    return stats.paths_TLK


def check_topk(topk: np.ndarray, num_moe_layers: int, num_experts: int, top_k: int, source: str) -> None:
    """Refuse a trace whose shape or expert ids do not fit the model."""
    if topk.shape[1] != num_moe_layers:
        raise InputError(f"{topk.shape[1]} MoE layers, the model has {num_moe_layers}", source=source,
                         field="topk")
    if topk.shape[2] != top_k:
        raise InputError(f"top-{topk.shape[2]} rows, the model has top_k {top_k}", source=source, field="topk")
    lo, hi = int(topk.min()), int(topk.max())
    if lo < 0:
        t, li, j = (int(x) for x in np.argwhere(topk == lo)[0])
        raise InputError(f"expert id {lo} at token {t}, MoE layer {li}, choice {j} is negative", source=source,
                         field="topk")
    if hi >= num_experts:
        t, li, j = (int(x) for x in np.argwhere(topk == hi)[0])
        raise InputError(f"expert id {hi} at token {t}, MoE layer {li}, choice {j} exceeds the model's "
                         f"{num_experts} experts (0..{num_experts - 1})", source=source, field="topk")
    dup = (np.sort(topk, axis=2)[:, :, 1:] == np.sort(topk, axis=2)[:, :, :-1]).any(axis=2)
    if dup.any():
        t, li = (int(x) for x in np.argwhere(dup)[0])
        raise InputError(f"token {t} at MoE layer {li} chose one expert twice ({topk[t, li].tolist()})",
                         source=source, field="topk")
