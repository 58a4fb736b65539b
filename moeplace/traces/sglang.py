"""SGLang expert-distribution dumps (`.pt`, written by `torch.save` in `expert_distribution.py`).

Two recorder modes are read:

- `per_token`: `{"records": [{"forward_pass_id", "rank", "topk_ids_of_layer": int32 [layers, tokens, 8],
  ...}, ...], "last_physical_to_logical_map": int [layers, physical_experts]}`. Ids are physical slots,
  mapped to logical experts with the map; -1 pads unused top-k columns and layers without MoE (dense
  layers stay -1 for every token). One record is one forward pass: its rows are the same tokens at every
  layer, so transitions are exact.
- `per_pass`: the same records with `global_physical_count` int [layers, physical_experts] (choices per
  slot in that forward pass) instead of the ids: slot counts are added into their logical experts with the
  map and summed over records: loads only.
- `stat` (and `stat_approx`): `{"rank", "logical_count": int [buffered steps, layers, logical_experts], ...}`,
  or [layers, logical_experts] when the recorder keeps a running sum only: loads only, summed over steps.

Files are loaded with `torch.load(..., weights_only=True)`: tensors, numbers, strings, lists and dicts, no
code. torch is optional (`pip install 'moeplace[runtime]'`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moeplace.errors import InputError
from moeplace.traces.aggregate import Accumulator
from moeplace.traces.arrays import add_rows
from moeplace.traces.counts import check_counts, stats_from_counts
from moeplace.traces.stats import RoutingStats

TORCH_HINT = "pip install 'moeplace[runtime]'"


def load_pt(p: Path, what: str = "SGLang .pt dumps") -> object:
    try:
        import torch
    except ImportError:
        raise InputError(f"reading {what} needs PyTorch, which is not installed: {TORCH_HINT}",
                         source=str(p)) from None
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        text = " ".join(str(exc).split())
        if "weights_only" in text or "Unpickl" in type(exc).__name__ or "unpickl" in text.lower():
            raise InputError("needs arbitrary pickled Python objects to load, which moeplace never loads "
                             "(torch.load with weights_only=True refused it)", source=str(p)) from None
        raise InputError(f"not a readable .pt file, truncated or corrupt ({type(exc).__name__}: {text[:160]})",
                         source=str(p)) from None


def _np(x: object, src: str, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    raise InputError(f"must be a tensor, got {type(x).__name__}", source=src, field=name)


def read_sglang(p: Path, *, num_experts: int | None, top_k: int | None, keep_paths: int | None, salt: int,
                provenance: dict) -> RoutingStats:
    """One dump, or a directory of them (`expert_distribution_recorder_*.pt`, one per rank): their sum."""
    if not p.is_dir():
        return _read_one(p, num_experts, top_k, keep_paths, salt, provenance)
    files = sorted(p.glob("expert_distribution_recorder_*.pt"))
    if not files:
        raise InputError("no expert_distribution_recorder_*.pt files here (SGLang dumps)", source=str(p))
    total, modes = None, {}
    for i, f in enumerate(files):
        s = _read_one(f, num_experts, top_k, keep_paths, (salt + 0x9E3779B97F4A7C15 * (i + 1)) % (1 << 64),
                      dict(provenance, file=f.name))
        modes.setdefault(s.provenance["mode"] == "stat", f)
        if len(modes) > 1:
            raise InputError(f"a stat-mode dump (already summed over ranks) beside per-rank dumps "
                             f"({modes[True].name}, {modes[False].name}): they would count the same tokens twice; "
                             f"give one of them", source=str(p))
        total = s if total is None else total + s
    parts = total.provenance.get("parts", [total.provenance])
    mode = {q.get("mode") for q in parts}
    return total.with_provenance(dict(provenance, mode=mode.pop() if len(mode) == 1 else "mixed", files=len(files),
                                      parts=parts))


def _read_one(p: Path, num_experts: int | None, top_k: int | None, keep_paths: int | None, salt: int,
              provenance: dict) -> RoutingStats:
    obj = load_pt(p)
    src = str(p)
    if not isinstance(obj, dict):
        raise InputError(f"expected a dict from SGLang's expert distribution recorder, got {type(obj).__name__}",
                         source=src)
    if "records" in obj:
        return _per_token(obj, src, num_experts, top_k, keep_paths, salt, provenance)
    if "logical_count" in obj:
        count = check_counts("logical_count", _np(obj["logical_count"], src, "logical_count"), src)
        if count.ndim == 2:
            count = count[None]
        if count.ndim != 3:
            raise InputError(f"must be [steps, layers, experts] or [layers, experts], got shape {count.shape}",
                             source=src, field="logical_count")
        return _loads(count.sum(axis=0), src, "logical_count", top_k,
                      dict(provenance, mode="stat", steps=int(count.shape[0]),
                           load_records=int(count.shape[0] * count.shape[1])))
    raise InputError(f"neither 'records' (per_token mode) nor 'logical_count' (stat mode) in the dump "
                     f"(keys: {', '.join(map(str, obj))})", source=src)


def _loads(load: np.ndarray, src: str, name: str, top_k: int | None, prov: dict) -> RoutingStats:
    """Loads [model layers, experts]: layers with no count are dense and dropped."""
    if top_k is None:
        raise InputError(f"{name} holds loads only, not top-k: give --top-k or --model", source=src)
    moe = np.flatnonzero(load.sum(axis=1) > 0)
    if moe.size == 0:
        raise InputError("every count is zero", source=src, field=name)
    return stats_from_counts(load[moe], top_k=top_k, layer_numbers=tuple(int(x) for x in moe), src=src,
                             provenance=prov)


def _per_pass(obj: dict, src: str, num_experts: int | None, top_k: int | None, provenance: dict) -> RoutingStats:
    if "last_physical_to_logical_map" not in obj:
        raise InputError("per_pass records without 'last_physical_to_logical_map'", source=src)
    p2l = _np(obj["last_physical_to_logical_map"], src, "last_physical_to_logical_map").astype(np.int64)
    if p2l.ndim != 2 or (p2l.size and p2l.min() < 0):
        raise InputError(f"must be [layers, physical experts] of ids >= 0, got shape {p2l.shape}", source=src,
                         field="last_physical_to_logical_map")
    E = num_experts or int(p2l.max()) + 1
    if p2l.max() >= E:
        raise InputError(f"logical expert {int(p2l.max())} outside 0..{E - 1}", source=src,
                         field="last_physical_to_logical_map")
    load = np.zeros((p2l.shape[0], E), np.int64)
    rows = np.repeat(np.arange(p2l.shape[0]), p2l.shape[1])
    for i, rec in enumerate(obj["records"]):
        name = f"records[{i}].global_physical_count"
        if not isinstance(rec, dict) or "global_physical_count" not in rec:
            raise InputError("has neither 'topk_ids_of_layer' (per_token) nor 'global_physical_count' (per_pass)",
                             source=src, field=f"records[{i}]")
        c = check_counts(name, _np(rec["global_physical_count"], src, name), src)
        if c.shape != p2l.shape:
            raise InputError(f"shape {c.shape} does not match last_physical_to_logical_map {p2l.shape}", source=src,
                             field=name)
        np.add.at(load, (rows, p2l.reshape(-1)), c.reshape(-1))
    return _loads(load, src, "global_physical_count", top_k,
                  dict(provenance, mode="per_pass", records=len(obj["records"]),
                       load_records=len(obj["records"]) * int(p2l.shape[0])))


def _per_token(obj: dict, src: str, num_experts: int | None, top_k: int | None, keep_paths: int | None,
               salt: int, provenance: dict) -> RoutingStats:
    records = obj["records"]
    if not isinstance(records, list) or not records:
        raise InputError("'records' is empty", source=src, field="records")
    if isinstance(records[0], dict) and "topk_ids_of_layer" not in records[0] \
            and "global_physical_count" in records[0]:
        return _per_pass(obj, src, num_experts, top_k, provenance)
    blocks = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or "topk_ids_of_layer" not in rec:
            raise InputError(f"record {i} has no 'topk_ids_of_layer' (recorded in another mode?)", source=src,
                             field="records")
        ids = _np(rec["topk_ids_of_layer"], src, f"records[{i}].topk_ids_of_layer")
        if ids.ndim != 3 or not np.issubdtype(ids.dtype, np.integer):
            raise InputError(f"must be integer [layers, tokens, k], got {ids.dtype} {ids.shape}", source=src,
                             field=f"records[{i}].topk_ids_of_layer")
        if blocks and ids.shape[0] != blocks[0].shape[0]:
            raise InputError(f"{ids.shape[0]} layers, record 0 has {blocks[0].shape[0]}", source=src,
                             field=f"records[{i}].topk_ids_of_layer")
        blocks.append(ids.astype(np.int64))
    p2l = obj.get("last_physical_to_logical_map")
    if p2l is not None:
        p2l = _np(p2l, src, "last_physical_to_logical_map").astype(np.int64)
        if p2l.ndim != 2 or p2l.shape[0] != blocks[0].shape[0]:
            raise InputError(f"shape {p2l.shape} does not match {blocks[0].shape[0]} layers", source=src,
                             field="last_physical_to_logical_map")
        for i, ids in enumerate(blocks):
            if ids.size and ids.max() >= p2l.shape[1]:
                raise InputError(f"physical expert id {int(ids.max())} outside 0..{p2l.shape[1] - 1}", source=src,
                                 field=f"records[{i}].topk_ids_of_layer")
            lay = np.arange(ids.shape[0])[:, None, None]
            blocks[i] = np.where(ids >= 0, p2l[lay, np.maximum(ids, 0)], ids)
    E = num_experts or (int(p2l.max()) + 1 if p2l is not None else int(max(b.max() for b in blocks)) + 1)
    used = np.zeros(blocks[0].shape[0], bool)
    cols = np.zeros(blocks[0].shape[2], bool)
    for ids in blocks:
        used |= (ids >= 0).any(axis=(1, 2))
        cols |= (ids >= 0).any(axis=(0, 1))
    layers = np.flatnonzero(used)
    if layers.size == 0:
        raise InputError("no token has an expert id (every topk_ids_of_layer entry is -1)", source=src,
                         field="records")
    keep_cols = np.flatnonzero(cols)
    acc = Accumulator(tuple(int(x) for x in layers), E, int(keep_cols.size), keep_paths, src)
    row = 0
    for i, ids in enumerate(blocks):
        block = ids[layers].transpose(1, 0, 2)
        add_rows(acc, block, row, salt, src, f"records[{i}].topk_ids_of_layer", keep_cols)
        row += block.shape[0]
    return acc.finish(dict(provenance, mode="per_token", records=len(blocks)))
