"""Per-token routing traces as arrays: `topk` int [tokens, moe_layers, k], experts in gate order.

`.npz`/`.npy` arrays are read here directly (no pickles); any other per-token format moeplace reads (JSON
lines, SGLang per-token dumps, TensorRT-LLM token_selected_experts) goes through `moeplace.traces.read`,
which returns the tokens that have a record at every layer, in file order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moeplace.errors import InputError


def read_topk(path: str | Path, *, num_experts: int | None = None) -> np.ndarray:
    """Token paths [tokens, layers, k]; `num_experts` is needed for JSON lines (they do not carry it)."""
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", source=str(p))
    if p.is_dir() or p.suffix.lower() not in (".npz", ".npy"):
        return _read_other(p, num_experts)
    try:
        if p.suffix.lower() == ".npy":
            topk = np.load(p, allow_pickle=False)
        else:
            with np.load(p, allow_pickle=False) as z:
                if "topk" not in z.files:
                    raise InputError(f"no array 'topk' (found: {', '.join(z.files) or 'none'})", source=str(p))
                topk = z["topk"]
    except InputError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError("holds pickled objects, which moeplace never loads", source=str(p)) from None
        raise InputError(f"not a readable array file ({exc})", source=str(p)) from None
    except Exception as exc:
        raise InputError(f"not a readable array file ({type(exc).__name__}: {exc})", source=str(p)) from None
    if topk.ndim != 3:
        raise InputError(f"must be [tokens, moe_layers, k], got shape {topk.shape}", source=str(p), field="topk")
    if not np.issubdtype(topk.dtype, np.integer):
        raise InputError(f"must hold integer expert ids, got dtype {topk.dtype}", source=str(p), field="topk")
    if topk.shape[0] == 0:
        raise InputError("holds no tokens", source=str(p), field="topk")
    return topk


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
