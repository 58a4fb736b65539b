"""Megatron routing traces (trace v1): one directory per (step, microbatch, MoE layer).

    manifest.json               {"schema_version": 1, "num_experts": E, "topk": k, "logical_layer_id": l,
                                 "step_id": s, "microbatch_id": m, "logical_num_tokens": T, "world_size": W,
                                 "tensors": {name: {"file", "sha256", "shape", "dtype"}}, ...}
    tensors/expert_ids.pt       int64 [T, k]    the routed experts of every token (logical ids)
    tensors/token_ids.pt        int64 [T, k]    (equal to expert_ids in this harness)
    tensors/gates.pt            float32 [T, k]  gate weights, rows sum to 1 (checked for shape, not used)
    tensors/source_rank.pt      int32 [T]       the rank that contributed each row

Give one trace directory, or a directory whose subdirectories are traces (several layers and steps). Traces of
one (step, microbatch) with the same rows (same count and source ranks) are the same tokens at each layer, so
their transitions are exact; a layer whose rows differ counts in load and co-activation only
(`misaligned_rows`). Tensors are loaded with `torch.load(..., weights_only=True)` after their sha256 is checked.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from moeplace.errors import InputError
from moeplace.fileio import file_digest
from moeplace.traces.aggregate import Accumulator
from moeplace.traces.arrays import add_rows
from moeplace.traces.kernels import duplicate_rows
from moeplace.traces.sglang import load_pt
from moeplace.traces.stats import RoutingStats

SCHEMA_VERSION = 1
TENSORS = ("expert_ids", "token_ids", "gates", "source_rank")


def trace_dirs(p: Path) -> list[Path]:
    if p.is_file():
        return [p.parent] if p.name == "manifest.json" else []
    if (p / "manifest.json").is_file():
        return [p]
    return sorted(d for d in p.iterdir() if d.is_dir() and (d / "manifest.json").is_file())


def _int(man: dict, key: str, src: str, default: int | None = None) -> int:
    v = man.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InputError(f"must be a whole number >= 0, got {v!r}", source=src, field=key)
    return v


def _tensor(d: Path, man: dict, name: str, src: str) -> np.ndarray | None:
    info = man["tensors"].get(name)
    if info is None:
        if name == "expert_ids":
            raise InputError("the manifest lists no 'expert_ids' tensor", source=src, field="tensors")
        return None
    if not isinstance(info, dict) or not isinstance(info.get("file"), str):
        raise InputError(f"must be {{'file', 'sha256', 'shape', 'dtype'}}, got {info!r}", source=src,
                         field=f"tensors.{name}")
    f = (d / info["file"]).resolve()
    if d.resolve() not in f.parents:
        raise InputError(f"file {info['file']!r} lies outside the trace directory", source=src,
                         field=f"tensors.{name}")
    if not f.is_file():
        raise InputError(f"file {info['file']} not found", source=src, field=f"tensors.{name}")
    if "sha256" in info and file_digest(str(f)) != info["sha256"]:
        raise InputError(f"sha256 does not match the manifest's {str(info['sha256'])[:16]}... (changed or "
                         f"truncated)", source=str(f), field=name)
    t = load_pt(f, "Megatron routing traces")
    if not hasattr(t, "detach"):
        raise InputError(f"must be a tensor, got {type(t).__name__}", source=str(f), field=name)
    a = t.detach().cpu().numpy()
    if "shape" in info and list(a.shape) != list(info["shape"]):
        raise InputError(f"shape {list(a.shape)}, the manifest says {info['shape']}", source=str(f), field=name)
    if "dtype" in info and str(t.dtype).replace("torch.", "") != info["dtype"]:
        raise InputError(f"dtype {str(t.dtype).replace('torch.', '')}, the manifest says {info['dtype']}",
                         source=str(f), field=name)
    return a


def _load(d: Path) -> dict:
    src = str(d / "manifest.json")
    try:
        man = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not JSON ({exc})", source=src) from None
    if not isinstance(man, dict):
        raise InputError("must be a JSON object", source=src)
    if man.get("schema_version") != SCHEMA_VERSION:
        raise InputError(f"schema_version {man.get('schema_version')!r}, moeplace reads {SCHEMA_VERSION}",
                         source=src, field="schema_version")
    for key in ("num_experts", "topk", "tensors"):
        if key not in man:
            raise InputError("missing", source=src, field=key)
    if not isinstance(man["tensors"], dict):
        raise InputError("must be an object", source=src, field="tensors")
    E, k = _int(man, "num_experts", src), _int(man, "topk", src)
    ids = _tensor(d, man, "expert_ids", src)
    f = str(d / man["tensors"]["expert_ids"]["file"])
    if ids.ndim != 2 or ids.shape[1] != k or not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"must be integer [tokens, {k}] (topk {k}), got {ids.dtype} {list(ids.shape)}", source=f,
                         field="expert_ids")
    if "logical_num_tokens" in man and _int(man, "logical_num_tokens", src) != ids.shape[0]:
        raise InputError(f"{ids.shape[0]} rows, the manifest says logical_num_tokens {man['logical_num_tokens']}",
                         source=f, field="expert_ids")
    gates = _tensor(d, man, "gates", src)
    if gates is not None and gates.shape != ids.shape:
        raise InputError(f"shape {list(gates.shape)} does not match expert_ids {list(ids.shape)}", source=src,
                         field="gates")
    ranks = _tensor(d, man, "source_rank", src)
    if ranks is not None and ranks.shape != (ids.shape[0],):
        raise InputError(f"shape {list(ranks.shape)}, expected [{ids.shape[0]}]", source=src, field="source_rank")
    return {"E": E, "k": k, "ids": ids, "ranks": ranks, "file": f, "layer": _int(man, "logical_layer_id", src, 0),
            "group": (_int(man, "step_id", src, 0), _int(man, "microbatch_id", src, 0)), "src": src}


def _aligned(t: dict, ref: dict) -> bool:
    """Whether a trace's rows are the reference trace's tokens (same count and source ranks)."""
    if t["ids"].shape[0] != ref["ids"].shape[0]:
        return False
    return t["ranks"] is None or ref["ranks"] is None or bool(np.array_equal(t["ranks"], ref["ranks"]))


def read_megatron(p: Path, *, keep_paths: int | None, salt: int, provenance: dict) -> RoutingStats:
    dirs = trace_dirs(p)
    if not dirs:
        raise InputError("no manifest.json here or in a subdirectory (a Megatron routing trace)", source=str(p))
    traces = [_load(d) for d in dirs]
    E, k = traces[0]["E"], traces[0]["k"]
    for t in traces:
        if (t["E"], t["k"]) != (E, k):
            raise InputError(f"num_experts {t['E']}, topk {t['k']}; {traces[0]['src']} has {E}, {k}", source=t["src"])
    groups: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for t in traces:
        if t["layer"] in groups[t["group"]]:
            raise InputError(f"a second trace of layer {t['layer']} at step {t['group'][0]}, microbatch "
                             f"{t['group'][1]}", source=t["src"], field="logical_layer_id")
        groups[t["group"]][t["layer"]] = t
    layers = tuple(sorted({t["layer"] for t in traces}))
    index = {layer: i for i, layer in enumerate(layers)}
    acc = Accumulator(layers, E, k, keep_paths)
    row = 0
    for g in sorted(groups):
        by_layer = groups[g]
        ref = max(by_layer.values(), key=lambda t: (t["ids"].shape[0], -t["layer"]))
        n = ref["ids"].shape[0]
        paths = np.full((n, len(layers), k), -1, np.int64)
        for layer, t in by_layer.items():
            if _aligned(t, ref):
                paths[:, index[layer]] = t["ids"]
        add_rows(acc, paths, row, salt, ref["file"], "expert_ids")
        row += n
        for layer, t in sorted(by_layer.items()):
            if _aligned(t, ref):
                continue
            a = t["ids"].astype(np.int64)
            bad = (a < 0) | (a >= E)
            if bad.any():
                i, j = (int(x) for x in np.argwhere(bad)[0])
                raise InputError(f"expert id {a[i, j]} at token {i}, choice {j} outside 0..{E - 1}", source=t["file"],
                                 field="expert_ids")
            dup = duplicate_rows(a)
            acc.drop("duplicate_expert", int(dup.sum()))
            acc.add_layer_rows(index[layer], a[~dup], new_tokens=False)
            acc.drop("misaligned_rows", int((~dup).sum()))
    return acc.finish(dict(provenance, mode="megatron_trace_v1", traces=len(traces)))
