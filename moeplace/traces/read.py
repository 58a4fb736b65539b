"""The front door: any trace or statistics file -> `RoutingStats`, by a registry of readers.

    format        what                                                        reader
    jsonl         per-token JSON lines {"token","layer","experts"[,"weights"]}   moeplace.traces.jsonl/stream
    topk          .npy/.npz with `topk` [tokens, layers, k]                    moeplace.traces.arrays
    stats         a moeplace statistics .npz                                  moeplace.traces.statsfile
    routing-counts  .npz of routing-analysis counts (`load`, `cross`)          here (the OLMoE counts)
    sglang        SGLang expert-distribution dump (.pt)                       moeplace.traces.sglang
    trtllm        TensorRT-LLM expert statistics (dir or .safetensors)        moeplace.traces.trtllm
    vllm-eplb     vLLM EPLB load records (JSON lines, eplb_load_stats)        moeplace.traces.vllm
    vllm-routed   vLLM routed-expert arrays, one .npz member per request      moeplace.traces.vllm
    megatron      Megatron routing trace (manifest.json + tensors/*.pt)       moeplace.traces.megatron
    megatron-router  Megatron-LM router_trace_rank{N}.jsonl (dir or file)     moeplace.traces.megatron_router
    csv           count matrices as CSV                                       moeplace.traces.csvcounts

`build_stats` reads several files (each its own token namespace) and adds their statistics up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moeplace.errors import InputError
from moeplace.fileio import file_digest
from moeplace.traces.limits import MAX_EXPERTS, check_shape, file_int, layer_numbers
from moeplace.traces.stats import RoutingStats
from moeplace.traces.stream import DEFAULT_CHUNK_BYTES, DEFAULT_WINDOW_BYTES


@dataclass(frozen=True)
class ReadOptions:
    num_experts: int | None = None
    top_k: int | None = None
    layer_numbers: tuple[int, ...] | None = None
    keep_paths: int | None = 65536
    jobs: int | None = None
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    window_bytes: int = DEFAULT_WINDOW_BYTES
    progress: Callable[[int, int], None] | None = None


@dataclass(frozen=True)
class Reader:
    name: str
    summary: str
    read: Callable[[Path, ReadOptions, int, dict], RoutingStats]


READERS: dict[str, Reader] = {}


def register_reader(reader: Reader) -> Reader:
    if reader.name in READERS:
        raise ValueError(f"trace reader {reader.name!r} is already registered")
    READERS[reader.name] = reader
    return reader


def fingerprint(p: Path) -> str:
    """blake2b of the size and the first and last 64 KiB: names a file without reading all of it."""
    size = p.stat().st_size
    h = hashlib.blake2b(digest_size=8)
    h.update(size.to_bytes(8, "little"))
    with open(p, "rb") as fh:
        h.update(fh.read(1 << 16))
        if size > 1 << 17:
            fh.seek(size - (1 << 16))
            h.update(fh.read(1 << 16))
    return h.hexdigest()


def _dir_fingerprint(p: Path) -> str:
    h = hashlib.blake2b(digest_size=8)
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        h.update(f.relative_to(p).as_posix().encode() + b"\0" + fingerprint(f).encode())
    return h.hexdigest()


def detect_format(p: Path) -> str:
    if p.is_dir():
        from moeplace.traces.megatron import trace_dirs

        if (p / "meta_info.json").is_file() or any(p.glob("*.safetensors")):
            return "trtllm"
        if trace_dirs(p):
            return "megatron"
        from moeplace.traces.megatron_router import trace_files

        if trace_files(p):
            return "megatron-router"
        if any(p.glob("expert_distribution_recorder_*.pt")):
            return "sglang"
        raise InputError("a directory, but neither TensorRT-LLM expert statistics (meta_info.json, "
                         ".safetensors), a Megatron routing trace (manifest.json), Megatron-LM router traces "
                         "(router_trace_rank{N}.jsonl) nor SGLang dumps (expert_distribution_recorder_*.pt)",
                         source=str(p))
    if not p.is_file():
        raise InputError("file not found", source=str(p))
    if p.name == "manifest.json" and (p.parent / "tensors").is_dir():
        return "megatron"
    if p.name == "meta_info.json":
        return "trtllm"
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _json_lines_format(p)
    if suffix == ".npy":
        return "topk"
    if suffix == ".pt":
        return "sglang"
    if suffix == ".safetensors":
        return "trtllm"
    if suffix == ".csv":
        return "csv"
    if suffix == ".npz":
        from moeplace.traces.arrays import npz_members

        names = set(npz_members(p))
        if "load" in names and "format_version" in names:
            return "stats"
        if "cross" in names and "load" in names:
            return "routing-counts"
        if "topk" in names:
            return "topk"
        from moeplace.traces.vllm import routed_members

        if routed_members(p):
            return "vllm-routed"
        raise InputError(f"an .npz with neither `topk` (a trace), `load` (statistics) nor only int [tokens, "
                         f"layers, k] arrays (vLLM routed experts); arrays: "
                         f"{', '.join(sorted(names)) or 'none'}", source=str(p))
    with open(p, "rb") as fh:
        head = fh.read(1)
    if head == b"{":
        return _json_lines_format(p)
    raise InputError(f"unknown trace format {suffix or '(no suffix)'!r} (known: .jsonl, .npy, .npz, .pt, "
                     f".safetensors, .csv, or a TensorRT-LLM statistics directory)", source=str(p))


def _json_lines_format(p: Path) -> str:
    """Per-token JSON lines, vLLM EPLB records or Megatron-LM router traces, by the first line's keys."""
    from moeplace.traces.megatron_router import is_router_trace
    from moeplace.traces.vllm import is_eplb

    if is_eplb(p):
        return "vllm-eplb"
    return "megatron-router" if is_router_trace(p) else "jsonl"


def read_stats(path: str | Path, options: ReadOptions = ReadOptions(), fmt: str | None = None) -> RoutingStats:
    p = Path(path)
    fmt = fmt or detect_format(p)
    if fmt not in READERS:
        raise InputError(f"unknown format {fmt!r} (known: {', '.join(READERS)})", field="--format")
    if not p.exists():
        raise InputError("file not found", source=str(p))
    if p.is_file() and p.stat().st_size == 0:
        raise InputError("empty file", source=str(p))
    fp = fingerprint(p) if p.is_file() else _dir_fingerprint(p)
    prov = {"source": "trace", "format": fmt, "file": p.name, "fingerprint": fp}
    return READERS[fmt].read(p, options, int(fp, 16), prov)


def build_stats(paths: list[str | Path], options: ReadOptions = ReadOptions(), fmt: str | None = None) -> RoutingStats:
    if not paths:
        raise InputError("no trace files given")
    total = None
    for path in paths:
        s = read_stats(path, options, fmt)
        total = s if total is None else total + s
    return total


def _jsonl(p: Path, o: ReadOptions, salt: int, prov: dict) -> RoutingStats:
    from moeplace.traces.stream import read_jsonl

    if o.num_experts is None:
        raise InputError("JSON lines do not say how many experts a layer has: give --num-experts or --model",
                         source=str(p))
    return read_jsonl(p, num_experts=o.num_experts, layer_numbers=o.layer_numbers, keep_paths=o.keep_paths,
                      salt=salt, jobs=o.jobs, chunk_bytes=o.chunk_bytes, window_bytes=o.window_bytes,
                      progress=o.progress, provenance=prov)


def _topk(p: Path, o: ReadOptions, salt: int, prov: dict) -> RoutingStats:
    from moeplace.traces.aggregate import Accumulator
    from moeplace.traces.arrays import add_rows, npz_headers, read_small, topk_blocks

    shape, blocks = topk_blocks(p)
    if len(shape) != 3:
        raise InputError(f"must be [tokens, layers, k], got shape {shape}", source=str(p), field="topk")
    if shape[0] == 0:
        raise InputError("holds no tokens", source=str(p), field="topk")
    meta_e = read_small(p, "num_experts") if p.suffix.lower() == ".npz" else None
    meta_l = read_small(p, "layers") if p.suffix.lower() == ".npz" else None
    E = o.num_experts or (file_int(meta_e, str(p), "num_experts", 2, MAX_EXPERTS) if meta_e is not None else None)
    if E is None:
        raise InputError("holds no `num_experts`: give --num-experts or --model", source=str(p))
    layers = o.layer_numbers or (layer_numbers(meta_l, str(p)) if meta_l is not None else tuple(range(shape[1])))
    if len(layers) != shape[1]:
        raise InputError(f"{len(layers)} layer numbers for {shape[1]} layers", source=str(p), field="layers")
    check_shape(shape[1], E, shape[2], str(p))
    if p.suffix.lower() == ".npz":
        w = npz_headers(p, sizes=False).get("weights")  # its header only: the weights are never read
        if w is not None and w[0] != tuple(shape):
            raise InputError(f"shape {w[0]} does not match topk's {shape}", source=str(p), field="weights")
    acc = Accumulator(layers, E, shape[2], o.keep_paths, str(p))
    row = 0
    for block in blocks:
        add_rows(acc, block, row, salt, str(p), "topk")
        row += block.shape[0]
        if o.progress:
            o.progress(row, shape[0])
    return acc.finish(prov)


def _stats(p: Path, o: ReadOptions, salt: int, prov: dict) -> RoutingStats:
    s = RoutingStats.load(p)
    prov = dict(s.provenance)
    prov.setdefault("source", "statistics")
    prov.update(file=p.name, sha256=file_digest(str(p)))
    return s.with_provenance(prov)


def _routing_counts(p: Path, o: ReadOptions, salt: int, prov: dict) -> RoutingStats:
    from moeplace.traces.counts import stats_from_counts
    from moeplace.traces.statsfile import read_npz

    d = read_npz(p)
    for key in ("load", "cross", "cross_layer_pairs", "layers", "top_k"):
        if key not in d:
            raise InputError("missing array (routing counts need load, cross, cross_layer_pairs, layers, top_k)",
                             source=str(p), field=key)
    layers = layer_numbers(d["layers"], str(p))
    cross_pairs = d["cross_layer_pairs"]
    if not np.issubdtype(cross_pairs.dtype, np.integer) or cross_pairs.size > 2 * MAX_EXPERTS:
        raise InputError(f"must be integer layer pairs, got {cross_pairs.dtype} shape {cross_pairs.shape}",
                         source=str(p), field="cross_layer_pairs")
    pairs = [tuple(int(x) for x in row) for row in np.atleast_2d(cross_pairs)]
    want = list(zip(layers[:-1], layers[1:]))
    if pairs != want:
        raise InputError(f"layer pairs {pairs} are not the consecutive recorded layers {want}", source=str(p),
                         field="cross_layer_pairs")
    top_k = file_int(d["top_k"], str(p), "top_k", 1, MAX_EXPERTS)
    return stats_from_counts(d["load"], top_k=top_k, layer_numbers=layers, src=str(p),
                             provenance=dict(prov, note="rank-aligned pairs between non-adjacent layers"),
                             trans_LEE=d["cross"], trans_pairing="rank")


def _sglang(p: Path, o: ReadOptions, salt: int, prov: dict) -> RoutingStats:
    from moeplace.traces.sglang import read_sglang

    return read_sglang(p, num_experts=o.num_experts, top_k=o.top_k, keep_paths=o.keep_paths, salt=salt,
                       provenance=prov)


def _trtllm(p: Path, o: ReadOptions, salt: int, prov: dict) -> RoutingStats:
    from moeplace.traces.trtllm import read_trtllm

    return read_trtllm(p, num_experts=o.num_experts, top_k=o.top_k, keep_paths=o.keep_paths, salt=salt,
                       provenance=prov)


def _vllm_eplb(p: Path, o: ReadOptions, salt: int, prov: dict) -> RoutingStats:
    from moeplace.traces.vllm import read_eplb

    return read_eplb(p, num_experts=o.num_experts, top_k=o.top_k, provenance=prov)


def _vllm_routed(p: Path, o: ReadOptions, salt: int, prov: dict) -> RoutingStats:
    from moeplace.traces.vllm import read_routed

    return read_routed(p, num_experts=o.num_experts, keep_paths=o.keep_paths, salt=salt, provenance=prov)


def _megatron(p: Path, o: ReadOptions, salt: int, prov: dict) -> RoutingStats:
    from moeplace.traces.megatron import read_megatron

    return read_megatron(p, keep_paths=o.keep_paths, salt=salt, provenance=prov)


def _megatron_router(p: Path, o: ReadOptions, salt: int, prov: dict) -> RoutingStats:
    from moeplace.traces.megatron_router import read_router_trace

    return read_router_trace(p, num_experts=o.num_experts, layer_numbers=o.layer_numbers, keep_paths=o.keep_paths,
                             salt=salt, provenance=prov)


def _csv(p: Path, o: ReadOptions, salt: int, prov: dict) -> RoutingStats:
    from moeplace.traces.csvcounts import read_csv

    return read_csv(p, num_experts=o.num_experts, top_k=o.top_k, provenance=prov)


register_reader(Reader("jsonl", "per-token JSON lines", _jsonl))
register_reader(Reader("topk", ".npy/.npz `topk` [tokens, layers, k]", _topk))
register_reader(Reader("stats", "moeplace statistics .npz", _stats))
register_reader(Reader("routing-counts", ".npz of routing-analysis counts (load, rank-aligned cross)", _routing_counts))
register_reader(Reader("sglang", "SGLang expert-distribution .pt dump", _sglang))
register_reader(Reader("trtllm", "TensorRT-LLM expert statistics", _trtllm))
register_reader(Reader("csv", "count matrices as CSV", _csv))
register_reader(Reader("vllm-eplb", "vLLM EPLB load records (JSON lines)", _vllm_eplb))
register_reader(Reader("vllm-routed", "vLLM routed-expert arrays (.npz, one member per request)", _vllm_routed))
register_reader(Reader("megatron", "Megatron routing trace (manifest.json + tensors/*.pt)", _megatron))
register_reader(Reader("megatron-router", "Megatron-LM router traces (router_trace_rank{N}.jsonl, dir or file)",
                       _megatron_router))
