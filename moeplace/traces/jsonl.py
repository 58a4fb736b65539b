"""Per-token JSON lines: one line per (token, layer), read in chunks by worker processes.

    {"token": 17, "layer": 4, "experts": [12, 40, 3, 9, 61, 22], "weights": [0.21, ...]}

`experts` are in gate order (highest first); `weights` and any other field are ignored. Lines are decoded
with msgspec into typed records (a strict JSON parser: a float, a string or a missing field is an error
naming the line), chunks of `chunk_bytes` are parsed and counted by `jobs` processes, and each worker
sends back only the records of tokens its chunk could not complete; the parent joins those across chunk
boundaries (moeplace.traces.join). Memory is bounded by the chunks in flight, the join window and the path
sample, not by the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from pathlib import Path

import msgspec
import numpy as np

from moeplace.errors import InputError
from moeplace.traces.aggregate import Accumulator
from moeplace.traces.join import Records, group
from moeplace.traces.limits import MAX_LAYER_NUMBER

DEFAULT_CHUNK_BYTES = 16 << 20


class _Rec(msgspec.Struct, gc=False):
    token: int
    layer: int
    experts: tuple[int, ...]


_DECODER = msgspec.json.Decoder(_Rec)
_TOKEN, _LAYER, _EXPERTS = attrgetter("token"), attrgetter("layer"), attrgetter("experts")


class ChunkError(Exception):
    """A bad line: `offset` is the byte offset of its start in the file (turned into a line number later)."""

    def __init__(self, offset: int, message: str):
        super().__init__(message)
        self.offset = offset
        self.message = message


@dataclass(frozen=True)
class JsonlPlan:
    path: str
    num_experts: int
    top_k: int
    layer_numbers: tuple[int, ...]
    keep_paths: int | None
    salt: int


def decode(data: bytes, start: int) -> list[_Rec]:
    """Records of a chunk of whole lines beginning at byte `start` of the file; blank lines are skipped."""
    try:
        return _DECODER.decode_lines(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    offset = start
    for line in data.split(b"\n"):
        if line.strip():
            try:
                _DECODER.decode(line)
            except msgspec.ValidationError as exc:
                raise ChunkError(offset, f"invalid record ({exc})") from None
            except msgspec.DecodeError as exc:
                raise ChunkError(offset, f"malformed or truncated JSON ({exc})") from None
        offset += len(line) + 1
    raise AssertionError("decode_lines failed but every line decodes")  # pragma: no cover


def line_offset(data: bytes, start: int, index: int) -> int:
    """Byte offset in the file of the `index`-th non-blank line of a chunk."""
    offset, seen = start, -1
    for line in data.split(b"\n"):
        if line.strip():
            seen += 1
            if seen == index:
                return offset
        offset += len(line) + 1
    return offset


def line_starts(data: bytes, start: int, n_records: int) -> np.ndarray:
    """int64 [n_records]: the byte offset in the file of each record's line (blank lines hold none).

    Positions are byte offsets, so keys and sample do not depend on how the file is chunked.
    """
    b = np.frombuffer(data, np.uint8)
    nl = np.flatnonzero(b == 10)
    keep = np.empty(nl.size + 1, np.int64)
    keep[0] = 0
    keep[1:] = nl + 1
    if keep[-1] == b.size:
        keep = keep[:-1]
    if keep.size != n_records:  # blank or whitespace-only lines: rare, do it line by line
        offsets, offset = [], 0
        for line in data.split(b"\n"):
            if line.strip():
                offsets.append(offset)
            offset += len(line) + 1
        keep = np.asarray(offsets, np.int64)
    assert keep.size == n_records, (keep.size, n_records)
    return start + keep.astype(np.int64)


def to_arrays(recs: list[_Rec], data: bytes, start: int, top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """token [R], layer number [R], experts [R, k]; a row with another k is an error naming its line."""
    n = len(recs)
    ex = list(map(_EXPERTS, recs))
    lens = np.fromiter(map(len, ex), np.int64, n)
    bad = np.flatnonzero(lens != top_k)
    if bad.size:
        i = int(bad[0])
        raise ChunkError(line_offset(data, start, i), f"{lens[i]} experts, the trace's rows have {top_k} "
                                                      f"(as its first line)")
    try:
        tok = np.fromiter(map(_TOKEN, recs), np.int64, n)
        lay = np.fromiter(map(_LAYER, recs), np.int64, n)
        experts = np.fromiter(chain.from_iterable(ex), np.int64, n * top_k).reshape(n, top_k)
    except OverflowError:  # a number past int64 (10^26): find its line, the slow way
        i, what, v = next((i, w, v) for i, r in enumerate(recs)
                          for w, v in (("token", r.token), ("layer", r.layer), *(("expert id", x) for x in r.experts))
                          if not -2**63 <= v < 2**63)
        raise ChunkError(line_offset(data, start, i), f"{what} {str(v)[:40]} does not fit 64 bits") from None
    return tok, lay, experts


def validate(tok: np.ndarray, lay: np.ndarray, experts: np.ndarray, plan: JsonlPlan, data: bytes, start: int,
             acc: Accumulator) -> Records:
    """Records with layer indices; ids out of range and unknown layers are errors, duplicate rows dropped."""
    layers = np.asarray(plan.layer_numbers, np.int64)
    li = np.searchsorted(layers, lay)
    known = (li < layers.size) & (layers[np.minimum(li, layers.size - 1)] == lay)
    if not known.all():
        i = int(np.flatnonzero(~known)[0])
        raise ChunkError(line_offset(data, start, i), f"layer {lay[i]} is not one of the trace's layers "
                                                      f"{_span(plan.layer_numbers)} (give them all with --layers)")
    E = plan.num_experts
    out = (experts < 0) | (experts >= E)
    if out.any():
        i, j = (int(x) for x in np.argwhere(out)[0])
        raise ChunkError(line_offset(data, start, i), f"expert id {experts[i, j]} outside 0..{E - 1}")
    from moeplace.traces.kernels import duplicate_rows

    dup = duplicate_rows(experts)
    pos = line_starts(data, start, tok.shape[0])
    rec = Records(tok, li.astype(np.int64), experts, pos)
    if dup.any():
        acc.drop("duplicate_expert", int(dup.sum()))
        rec = rec.take(~dup)
    return rec


def _span(layers: tuple[int, ...]) -> str:
    if len(layers) > 2 and list(layers) == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}..{layers[-1]}"
    return ", ".join(map(str, layers))


def count_chunk(plan: JsonlPlan, acc: Accumulator, data: bytes, start: int,
                recs: list[_Rec] | None = None) -> Records:
    """Count the tokens a chunk completes into `acc`; return the records of the others."""
    from moeplace.traces.kernels import sample_keys

    recs = decode(data, start) if recs is None else recs
    tok, lay, experts = to_arrays(recs, data, start, plan.top_k)
    rec = validate(tok, lay, experts, plan, data, start, acc)
    g = group(rec, len(plan.layer_numbers))
    acc.drop("duplicate_record", g.duplicates)
    acc.add_tokens(g.complete_NLK, sample_keys(plan.salt, g.complete_pos_N), g.complete_pos_N)
    return g.rest


def read_chunk(path: str, start: int, end: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read(end - start)


def chunk_bounds(path: Path, size: int, chunk_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges of whole lines, each about `chunk_bytes` long."""
    bounds, pos = [], 0
    with open(path, "rb") as fh:
        while pos < size:
            end = min(pos + chunk_bytes, size)
            if end < size:
                fh.seek(end)
                while True:
                    block = fh.read(1 << 16)
                    if not block:
                        end = size
                        break
                    nl = block.find(b"\n")
                    if nl >= 0:
                        end += nl + 1
                        break
                    end += len(block)
            bounds.append((pos, end))
            pos = end
    return bounds


def line_number(path: str, offset: int) -> int:
    """1-based line number of the line starting at byte `offset`."""
    n, done = 1, 0
    with open(path, "rb") as fh:
        while done < offset:
            block = fh.read(min(1 << 20, offset - done))
            if not block:
                break
            n += block.count(b"\n")
            done += len(block)
    return n


def first_look(data: bytes) -> tuple[list[_Rec], int, tuple[int, ...]]:
    """Decode the first chunk: its records, k (from the first line) and the layer numbers it names."""
    recs = decode(data, 0)
    if not recs:
        raise ChunkError(0, "holds no records")
    k = len(recs[0].experts)
    if k == 0:
        raise ChunkError(line_offset(data, 0, 0), "empty experts list")
    try:
        lay = np.fromiter(map(_LAYER, recs), np.int64, len(recs))
        ok = (lay >= 0) & (lay <= MAX_LAYER_NUMBER)
    except OverflowError:  # past int64: find it the slow way
        ok = np.fromiter((0 <= r.layer <= MAX_LAYER_NUMBER for r in recs), bool, len(recs))
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        raise ChunkError(line_offset(data, 0, bad), f"layer {str(recs[bad].layer)[:40]} is outside "
                                                    f"0..{MAX_LAYER_NUMBER}")
    layers = tuple(int(x) for x in np.unique(lay))
    return recs, k, layers


def as_input_error(path: str, exc: ChunkError) -> InputError:
    if exc.message == "holds no records":
        return InputError(exc.message, source=path)
    return InputError(exc.message, source=path, field=f"line {line_number(path, exc.offset)}")
