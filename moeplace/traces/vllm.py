"""vLLM routing statistics: EPLB load records and the routed-expert arrays of `--enable-return-routed-experts`.

EPLB load records (`--eplb-config '{"write_stats_path": ...}'`) are JSON lines: first one
`{"record_type": "eplb_load_meta", "version": 1, "num_layers": L, "num_ranks", ...}`, then one record per
step `{"record_type": "eplb_load_stats", "version": 1, "step": s, "expert_load": [L][physical slots],
"p2l_map": [L][physical slots]}`. Slot loads are added into their logical expert with that step's map (the map
changes when EPLB rearranges) and summed over steps: loads only, no co-activation, no transitions.

Routed experts (`CompletionOutput.routed_experts`, one int array [tokens, MoE layers, top_k] per request, logical
expert ids) are saved by the user: one request as `.npy` (read by the `topk` reader), several as an `.npz`
(`np.savez(f, *arrays)` or named members): every member is a request, its own tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from moeplace.errors import InputError
from moeplace.traces.aggregate import Accumulator
from moeplace.traces.arrays import add_rows, npz_members, topk_blocks
from moeplace.traces.counts import check_counts, stats_from_counts
from moeplace.traces.stats import RoutingStats

META, STATS = "eplb_load_meta", "eplb_load_stats"


def is_eplb(p: Path) -> bool:
    """Whether a JSON-lines file is an EPLB load record (its first record names an eplb record_type)."""
    with open(p, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0]
    return b'"record_type"' in head and b'"eplb_load' in head


def _matrix(rec: dict, key: str, src: str, line: int) -> np.ndarray:
    if key not in rec:
        raise InputError(f"{STATS} record without '{key}'", source=f"{src}:{line}", field=key)
    try:
        a = np.asarray(rec[key])
    except ValueError:
        a = None
    if a is None or a.ndim != 2 or a.dtype == object or not (np.issubdtype(a.dtype, np.integer)
                                                             or np.issubdtype(a.dtype, np.floating)):
        raise InputError("must be a [layers][physical slots] matrix of numbers", source=f"{src}:{line}", field=key)
    return a


def read_eplb(p: Path, *, num_experts: int | None, top_k: int | None, provenance: dict) -> RoutingStats:
    src = str(p)
    meta = None
    load = None
    steps = 0
    with open(p, encoding="utf-8-sig") as fh:
        for n, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                rec = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"not JSON ({exc.msg})", source=f"{src}:{n}") from None
            kind = rec.get("record_type") if isinstance(rec, dict) else None
            if kind == META:
                if meta is not None:
                    raise InputError(f"a second {META} record", source=f"{src}:{n}", field="record_type")
                for key in ("num_layers", "top_k"):
                    v = rec.get(key)
                    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                        raise InputError(f"must be a whole number >= 1, got {v!r}", source=f"{src}:{n}", field=key)
                meta = rec
                continue
            if kind != STATS:
                raise InputError(f"unexpected record_type {kind!r} (expected {META} or {STATS})",
                                 source=f"{src}:{n}", field="record_type")
            if meta is None:
                raise InputError(f"{STATS} record before the {META} record", source=f"{src}:{n}",
                                 field="record_type")
            slot = check_counts("expert_load", _matrix(rec, "expert_load", src, n), f"{src}:{n}")
            p2l = _matrix(rec, "p2l_map", src, n)
            if slot.shape != p2l.shape:
                raise InputError(f"expert_load shape {slot.shape} does not match p2l_map shape {p2l.shape}",
                                 source=f"{src}:{n}", field="p2l_map")
            L = int(meta.get("num_layers", slot.shape[0]))
            if slot.shape[0] != L:
                raise InputError(f"{slot.shape[0]} layers, {META} says num_layers {L}", source=f"{src}:{n}",
                                 field="expert_load")
            if not np.issubdtype(p2l.dtype, np.integer) or p2l.min() < 0:
                raise InputError("must hold logical expert ids >= 0", source=f"{src}:{n}", field="p2l_map")
            E = num_experts or (load.shape[1] if load is not None else int(p2l.max()) + 1)
            if p2l.max() >= E:
                raise InputError(f"logical expert {int(p2l.max())} outside 0..{E - 1}", source=f"{src}:{n}",
                                 field="p2l_map")
            if load is None:
                load = np.zeros((L, E), np.int64)
            rows = np.repeat(np.arange(L), p2l.shape[1])
            np.add.at(load, (rows, p2l.reshape(-1).astype(np.int64)), slot.reshape(-1))
            steps += 1
    if meta is None:
        raise InputError(f"no {META} record", source=src)
    if load is None:
        raise InputError(f"no {STATS} records", source=src)
    k = top_k or meta.get("top_k")
    if k is None:
        raise InputError("EPLB load records hold loads only, not top-k: give --top-k or --model", source=src)
    prov = dict(provenance, mode="eplb_load_stats", steps=steps, load_records=steps * int(load.shape[0]))
    return stats_from_counts(load, top_k=int(k), layer_numbers=tuple(range(load.shape[0])), src=src,
                             provenance=prov)


def routed_members(p: Path) -> list[str] | None:
    """The members of an `.npz` of vLLM routed-expert arrays (every member 3-D integer), or None."""
    names = npz_members(p)
    if not names or {"topk", "load"} & set(names):
        return None
    try:
        with np.load(p, allow_pickle=False, mmap_mode=None) as z:
            for name in names:
                fh = z.zip.open(name + ".npy")
                try:
                    version = np.lib.format.read_magic(fh)
                    shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                       else np.lib.format.read_array_header_2_0)(fh)
                finally:
                    fh.close()
                if len(shape) != 3 or not np.issubdtype(dtype, np.integer):
                    return None
    except Exception:
        return None
    return names


def read_routed(p: Path, *, num_experts: int | None, keep_paths: int | None, salt: int,
                provenance: dict) -> RoutingStats:
    src = str(p)
    names = routed_members(p)
    if not names:
        raise InputError("not an .npz of routed-expert arrays (every member int [tokens, layers, top_k])",
                         source=src)
    if num_experts is None:
        raise InputError("routed-expert arrays do not say how many experts a layer has: give --num-experts or "
                         "--model", source=src)
    shapes = {}
    for name in names:
        shape, _ = topk_blocks(p, name)
        shapes[name] = shape
    first = shapes[names[0]]
    for name, shape in shapes.items():
        if shape[1:] != first[1:]:
            raise InputError(f"shape {shape}: [layers, top_k] differ from {names[0]}'s {first}", source=src,
                             field=name)
    acc = Accumulator(tuple(range(first[1])), num_experts, first[2], keep_paths)
    row = 0
    for name in names:
        _, blocks = topk_blocks(p, name)
        for block in blocks:
            add_rows(acc, block, row, salt, src, name)
            row += block.shape[0]
    if row == 0:
        raise InputError("holds no tokens", source=src)
    return acc.finish(dict(provenance, mode="routed_experts", requests=len(names)))
