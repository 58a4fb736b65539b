"""Megatron-LM router traces: `router_trace_rank{N}.jsonl`, one file per rank (`--moe-routing-trace-path DIR`).

Megatron-LM's `RouterTracer` (megatron/core/transformer/moe/router_trace.py) writes one JSON line per (step,
block, MoE layer) on each rank:

    {"step": 0, "stage": "pre_dispatch", "block": "decoder", "layer": 3, "rank": 0, "num_tokens": 128,
     "topk": 22, "top_indices": [[12, 45, ...], ...]}

`top_indices` is [num_tokens][topk] of logical expert ids; `block` is "decoder" or "mtp" (MTP records carry
`mtp_idx`); hidden-state and logit sidecars add `hs_*`/`logit_*` fields, which are ignored. The file holds no
expert count: give `--num-experts`. Only decoder records are read (MTP heads are counted in the provenance).

Within one rank and step, the j-th record of every layer is the j-th forward pass of that step (inference: one
per step; training: one per microbatch), so records with the same (rank, step, j) and the same `num_tokens`
are the same tokens at each layer: their transitions are exact. A layer whose row count differs from the
pass's largest counts in load and co-activation only (`misaligned_rows`). Lines are read one at a time; one
step of one rank is held in memory.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from moeplace.errors import InputError
from moeplace.traces.aggregate import Accumulator
from moeplace.traces.arrays import add_rows
from moeplace.traces.kernels import duplicate_rows
from moeplace.traces.stats import RoutingStats

FILE_RE = re.compile(r"router_trace_rank(\d+)\.jsonl$")
KEYS = ("step", "layer", "num_tokens", "topk", "top_indices")


def is_router_trace(p: Path) -> bool:
    """Whether a JSON-lines file's first line has the router tracer's keys (`num_tokens`, `topk`, `top_indices`)."""
    with open(p, "rb") as fh:
        head = fh.read(1 << 16).lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0]
    return all(b'"%s"' % k.encode() in head for k in ("num_tokens", "topk", "step")) and b'"experts"' not in head


def trace_files(p: Path) -> list[Path]:
    """The per-rank files of a trace directory, by rank (or the one file given)."""
    if p.is_file():
        return [p]
    found = [(int(m.group(1)), f) for f in p.iterdir() if f.is_file() and (m := FILE_RE.search(f.name))]
    return [f for _, f in sorted(found)]


def _records(f: Path):
    src = str(f)
    with open(f, encoding="utf-8-sig") as fh:
        for n, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            where = f"{src}:{n}"
            try:
                rec = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"not JSON ({exc.msg}, column {exc.colno})", source=where) from None
            if not isinstance(rec, dict):
                raise InputError(f"must be a JSON object, got {type(rec).__name__}", source=where)
            for key in KEYS:
                if key not in rec:
                    raise InputError("missing (a router-trace record has step, layer, num_tokens, topk, "
                                     "top_indices)", source=where, field=key)
            for key in ("step", "layer", "num_tokens", "topk", "rank"):
                v = rec.get(key, 0)
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise InputError(f"must be a whole number >= 0, got {v!r}", source=where, field=key)
            yield n, where, rec


def _rows(rec: dict, where: str, k: int, E: int) -> np.ndarray:
    T = rec["num_tokens"]
    try:
        a = np.asarray(rec["top_indices"]) if T else np.zeros((0, k), np.int64)
    except ValueError:
        a = None
    if a is None or a.ndim != 2 or not (np.issubdtype(a.dtype, np.integer)) or a.shape != (T, rec["topk"]):
        got = "ragged" if a is None else f"{a.dtype} {list(a.shape)}"
        raise InputError(f"must be integer [num_tokens {T}][topk {rec['topk']}], got {got}", source=where,
                         field="top_indices")
    if rec["topk"] != k:
        raise InputError(f"topk {rec['topk']}, the trace's first record has {k}", source=where, field="topk")
    bad = (a < 0) | (a >= E)
    if bad.any():
        i, c = (int(x) for x in np.argwhere(bad)[0])
        raise InputError(f"expert id {a[i, c]} at token {i}, choice {c} (layer {rec['layer']}) outside 0..{E - 1}",
                         source=where, field="top_indices")
    return a.astype(np.int64)


def _first_layers(files: list[Path]) -> tuple[tuple[int, ...], int]:
    """The decoder layers of the first step of the first file, and its top-k."""
    layers, k, step = set(), None, None
    for _, where, rec in _records(files[0]):
        if rec.get("block", "decoder") != "decoder":
            continue
        if step is not None and rec["step"] != step:
            break
        step, k = rec["step"], k or rec["topk"]
        layers.add(rec["layer"])
    if k is None:
        raise InputError("no decoder router records", source=str(files[0]))
    return tuple(sorted(layers)), k


class _Pass:
    """The records of one (file, step): per layer, its forward passes in order."""

    def __init__(self, key):
        self.key = key
        self.by_layer: dict[int, list[tuple[np.ndarray, str]]] = {}

    def add(self, layer: int, rows: np.ndarray, where: str) -> None:
        self.by_layer.setdefault(layer, []).append((rows, where))


def _count(acc: Accumulator, p: _Pass, index: dict[int, int], row: int, salt: int) -> int:
    k = acc.top_k
    for j in range(max(len(v) for v in p.by_layer.values())):
        at = {layer: v[j] for layer, v in p.by_layer.items() if j < len(v)}
        n = max(r.shape[0] for r, _ in at.values())
        paths = np.full((n, len(index), k), -1, np.int64)
        ref_where = next(w for r, w in at.values() if r.shape[0] == n)
        for layer, (r, _) in at.items():
            if r.shape[0] == n:
                paths[:, index[layer]] = r
        add_rows(acc, paths, row, salt, ref_where, "top_indices")
        row += n
        for layer, (r, _) in sorted(at.items()):
            if r.shape[0] == n:
                continue
            dup = duplicate_rows(r)
            acc.drop("duplicate_expert", int(dup.sum()))
            acc.add_layer_rows(index[layer], r[~dup], new_tokens=False)
            acc.drop("misaligned_rows", int((~dup).sum()))
    return row


def read_router_trace(p: Path, *, num_experts: int | None, layer_numbers: tuple[int, ...] | None,
                      keep_paths: int | None, salt: int, provenance: dict) -> RoutingStats:
    files = trace_files(p)
    if not files:
        raise InputError("no router_trace_rank{N}.jsonl files here (Megatron-LM router traces)", source=str(p))
    if num_experts is None:
        raise InputError("Megatron-LM router traces do not say how many experts a layer has: give --num-experts "
                         "or --model", source=str(files[0]))
    first_layers, k = _first_layers(files)
    layers = tuple(layer_numbers) if layer_numbers else first_layers
    index = {layer: i for i, layer in enumerate(layers)}
    acc = Accumulator(layers, num_experts, k, keep_paths, str(files[0]))
    row, records, mtp, steps = 0, 0, 0, 0
    for f in files:
        cur: _Pass | None = None
        for _, where, rec in _records(f):
            if rec.get("block", "decoder") != "decoder":
                mtp += 1
                continue
            if rec["layer"] not in index:
                raise InputError(f"layer {rec['layer']} is not among the trace's layers {list(layers)} (those of "
                                 f"its first step; --layers names them)", source=where, field="layer")
            rows = _rows(rec, where, k, num_experts)
            key = (rec.get("rank", 0), rec["step"])
            if cur is None or cur.key != key:
                if cur is not None:
                    row = _count(acc, cur, index, row, salt)
                cur, steps = _Pass(key), steps + 1
            cur.add(rec["layer"], rows, where)
            records += 1
        if cur is not None:
            row = _count(acc, cur, index, row, salt)
    if records == 0:
        raise InputError("no decoder router records", source=str(p))
    prov = dict(provenance, mode="megatron_router_trace", files=len(files), records=records, steps=steps)
    if mtp:
        prov["mtp_records_skipped"] = mtp
    return acc.finish(prov)
