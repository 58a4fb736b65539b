"""TensorRT-LLM expert statistics (`EXPERT_STATISTIC_PATH` with `EXPERT_STATISTIC_ITER_RANGE` set).

The directory holds `meta_info.json` (`{"num_experts": E, "num_experts_per_token": k, ...}`) and, per rank,
safetensors files whose tensors are keyed `"{iteration}_{layer}"`:

    cooccurrence_rank{r}.safetensors            int32 [E, E]  per iteration and layer: tokens that chose
                                                              both e and f (the diagonal: tokens that chose e)
    rank{r}_raw.safetensors                     int32 [tokens, k]  the routed experts of every token
    token_selected_experts_rank{r}.safetensors  (the same, under its older name)
    rank{r}.safetensors                         int64 [E]     choices per expert: `torch.bincount` of the
                                                              routed ids, added up over the iteration's calls

Per-token files win (full statistics, exact transitions: within one iteration the rows of every layer are
the same tokens; a layer whose row count differs is misaligned and kept out of transitions); otherwise
co-occurrence gives load and co-activation; otherwise the bincounts give loads. safetensors is read here
with numpy (an 8-byte header length, a JSON header, raw little-endian data): no code is loaded.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from moeplace.errors import InputError
from moeplace.traces.aggregate import Accumulator
from moeplace.traces.arrays import add_rows
from moeplace.traces.counts import check_counts, stats_from_counts
from moeplace.traces.limits import MAX_EXPERTS, array_bytes, file_int
from moeplace.traces.stats import RoutingStats

_DTYPES = {"I8": "<i1", "I16": "<i2", "I32": "<i4", "I64": "<i8", "U8": "<u1", "U16": "<u2", "U32": "<u4",
           "U64": "<u8", "F16": "<f2", "F32": "<f4", "F64": "<f8", "BOOL": "|b1"}
_KEY = re.compile(r"([0-9]{1,18})_([0-9]{1,6})")  # ASCII digits, full match (no "1_2\n")


def read_safetensors(p: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a read-only memory map."""
    src = str(p)
    size = p.stat().st_size
    try:
        with open(p, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 or n > size - 8:
                raise InputError(f"truncated: header of {n} bytes in a file of {size}", source=src)
            header = json.loads(fh.read(n).decode("utf-8"))
    except InputError:
        raise
    except RecursionError:
        raise InputError("not a safetensors file (header nested too deeply)", source=src) from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, a 5000-digit integer
        raise InputError(f"not a safetensors file (header is not JSON: {str(exc)[:100]})", source=src) from None
    if not isinstance(header, dict):
        raise InputError("not a safetensors file (header is not an object)", source=src)
    out = {}
    base = 8 + n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = np.dtype(_DTYPES[info["dtype"]])
            if not isinstance(info["shape"], list) or not all(isinstance(x, int) for x in info["shape"]):
                raise TypeError
            shape = tuple(info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError, OverflowError):
            raise InputError(f"bad header entry {str(info)[:100]}", source=src, field=name[:60]) from None
        count = array_bytes(shape, dtype.itemsize, src, name[:60]) // dtype.itemsize
        if end - begin != count * dtype.itemsize or base + end > size or begin < 0:
            raise InputError(f"data [{begin}, {end}) does not hold {shape} {info['dtype']} within the file "
                             f"(truncated?)", source=src, field=name)
        out[name] = np.memmap(p, dtype=dtype, mode="r", offset=base + begin, shape=shape) if count else \
            np.zeros(shape, dtype)
    return out


def _keyed(tensors: dict[str, np.ndarray], src: str) -> dict[tuple[int, int], np.ndarray]:
    out = {}
    for name, arr in tensors.items():
        m = _KEY.fullmatch(name)
        if not m:
            raise InputError(f"tensor name {name[:60]!r} is not '<iteration>_<layer>'", source=src, field=name[:60])
        out[(int(m.group(1)), int(m.group(2)))] = arr
    if not out:
        raise InputError("holds no tensors (expected '<iteration>_<layer>' keys)", source=src)
    return out


def _files(p: Path) -> tuple[dict, dict[str, list[Path]]]:
    if p.name == "meta_info.json":
        p = p.parent
    root = p if p.is_dir() else p.parent
    meta_path = root / "meta_info.json"
    meta: dict = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except RecursionError:
            raise InputError("nested too deeply", source=str(meta_path)) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"not JSON ({str(exc)[:100]})", source=str(meta_path)) from None
        if not isinstance(meta, dict):
            raise InputError(f"must be a JSON object, got {type(meta).__name__}", source=str(meta_path))
    files = sorted(root.glob("*.safetensors")) if p.is_dir() else [p]
    kinds: dict[str, list[Path]] = defaultdict(list)
    for f in files:
        kind = ("tokens" if "token_selected_experts" in f.name or f.stem.endswith("_raw") else "cooccurrence" if "cooccurrence" in f.name
                else "bincount")
        kinds[kind].append(f)
    if not files:
        raise InputError("no .safetensors files (TensorRT-LLM expert statistics)", source=str(p))
    by_rank: dict[str, list[Path]] = defaultdict(list)
    for f in kinds.get("tokens", []):
        m = re.fullmatch(r"(?:token_selected_experts_)?rank(\d+)(?:_raw)?", f.stem)
        by_rank[m.group(1) if m else f.stem].append(f)
    for rank, both in sorted(by_rank.items()):
        if len(both) > 1:
            raise InputError(f"rank {rank} has per-token files under both names ({', '.join(x.name for x in both)}): "
                             f"they would count its tokens twice; keep one", source=str(p))
    return meta, kinds


def read_trtllm(p: Path, *, num_experts: int | None, top_k: int | None, keep_paths: int | None, salt: int,
                provenance: dict) -> RoutingStats:
    meta, kinds = _files(p)
    E = num_experts or meta.get("num_experts")
    k = top_k or meta.get("num_experts_per_token")
    if E is None or k is None:
        raise InputError("meta_info.json with num_experts and num_experts_per_token is missing: give "
                         "--num-experts and --top-k (or --model)", source=str(p))
    meta_src = str((p if p.is_dir() else p.parent) / "meta_info.json")
    E = file_int(E, meta_src, "num_experts", 2, MAX_EXPERTS)
    k = file_int(k, meta_src, "num_experts_per_token", 1, E)
    if "tokens" in kinds:
        return _tokens(kinds["tokens"], E, k, keep_paths, salt, dict(provenance, mode="token_selected_experts"))
    kind = "cooccurrence" if "cooccurrence" in kinds else "bincount"
    sums: dict[int, np.ndarray] = {}
    read = 0
    shape = (E, E) if kind == "cooccurrence" else (E,)
    for f in kinds[kind]:
        for (_, layer), arr in sorted(_keyed(read_safetensors(f), str(f)).items()):
            if arr.shape != shape:
                raise InputError(f"shape {arr.shape}, expected {shape} for {E} experts", source=str(f),
                                 field=f"{_}_{layer}")
            a = check_counts(f"{_}_{layer}", arr, str(f))
            sums[layer] = sums.get(layer, 0) + a
            read += 1
    layers = tuple(sorted(sums))
    stack = np.stack([sums[layer] for layer in layers])
    prov = dict(provenance, mode=kind, load_records=read)
    if kind == "bincount":
        return stats_from_counts(stack, top_k=k, layer_numbers=layers, src=str(p), provenance=prov)
    load = np.diagonal(stack, axis1=1, axis2=2).copy()
    coact = stack.copy()
    coact[:, np.arange(E), np.arange(E)] = 0
    return stats_from_counts(load, top_k=k, layer_numbers=layers, src=str(p), provenance=prov, coact_LEE=coact)


def _tokens(files: list[Path], E: int, k: int, keep_paths: int | None, salt: int, prov: dict) -> RoutingStats:
    keyed = [(f, _keyed(read_safetensors(f), str(f))) for f in files]
    layers = tuple(sorted({layer for _, d in keyed for (_, layer) in d}))
    index = {layer: i for i, layer in enumerate(layers)}
    acc = Accumulator(layers, E, k, keep_paths, str(files[0]))
    row = 0
    for f, d in keyed:
        by_iter: dict[int, dict[int, np.ndarray]] = defaultdict(dict)
        for (it, layer), arr in d.items():
            if arr.ndim != 2 or arr.shape[1] != k:
                raise InputError(f"shape {arr.shape}, expected [tokens, {k}] (num_experts_per_token {k})",
                                 source=str(f), field=f"{it}_{layer}")
            by_iter[it][layer] = arr
        for it in sorted(by_iter):
            blocks = by_iter[it]
            n = Counter(a.shape[0] for a in blocks.values()).most_common(1)[0][0]
            paths = np.full((n, len(layers), k), -1, np.int64)
            for layer, arr in sorted(blocks.items()):
                if arr.shape[0] == n:
                    paths[:, index[layer]] = arr
            add_rows(acc, paths, row, salt, str(f), f"{it}_*")
            row += n
            for layer, arr in sorted(blocks.items()):
                if arr.shape[0] != n:
                    a = np.asarray(arr, np.int64)
                    bad = (a < 0) | (a >= E)
                    if bad.any():
                        i, j = (int(x) for x in np.argwhere(bad)[0])
                        raise InputError(f"expert id {a[i, j]} at token {i}, choice {j} outside 0..{E - 1}",
                                         source=str(f), field=f"{it}_{layer}")
                    from moeplace.traces.kernels import duplicate_rows

                    dup = duplicate_rows(a)
                    acc.drop("duplicate_expert", int(dup.sum()))
                    acc.add_layer_rows(index[layer], a[~dup], new_tokens=False)
                    acc.drop("misaligned_rows", int((~dup).sum()))
    return acc.finish(prov)
