"""Count matrices as CSV. Two layouts, told apart by the header:

Long (`kind,layer,expert,other,count`, columns in any order; `stats show --csv` writes it):

    # num_experts=64 top_k=6
    kind,layer,expert,other,count
    load,2,0,,193                 tokens that chose expert 0 at layer 2
    coact,2,0,5,12                tokens that chose experts 0 and 5 at layer 2
    trans,2,0,17,30               tokens that chose 0 at layer 2 and 17 at the next layer
    trans_primary,2,0,17,9        as trans, with 0 the token's highest-gate expert at layer 2

Layers are the `layer` values of the load rows; `coact` may list one triangle (it is mirrored) or both.

Wide (an EPLB-style load matrix): one row per layer, one column per expert, no `kind` column; an optional
header row, whose first cell `layer` makes the first column the layer numbers.

`# key=value` comment lines give `num_experts` and `top_k`; both can also come from the command line.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from moeplace.errors import InputError
from moeplace.traces.limits import MAX_COUNT, check_shape
from moeplace.traces.counts import stats_from_counts
from moeplace.traces.stats import PARTS, RoutingStats

LONG_COLUMNS = ("kind", "layer", "expert", "other", "count")


def _lines(p: Path) -> tuple[dict[str, str], list[tuple[int, list[str]]]]:
    meta: dict[str, str] = {}
    rows: list[tuple[int, list[str]]] = []
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", source=str(p)) from None
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            for part in s[1:].replace(",", " ").split():
                key, sep, value = part.partition("=")
                if sep:
                    meta[key.strip()] = value.strip()
            continue
        rows.append((n, next(csv.reader([line]))))
    if not rows:
        raise InputError("empty file: holds no counts", source=str(p))
    return meta, rows


def _int(value: str, src: str, line: int, name: str, *, lo: int | None = 0) -> int:
    try:
        x = int(value.strip())
    except ValueError:
        try:
            f = float(value.strip())
        except ValueError:
            raise InputError(f"{name} {value!r} is not a number", source=src, field=f"line {line}") from None
        if not f.is_integer():
            raise InputError(f"{name} {value!r} is not a whole number", source=src, field=f"line {line}") from None
        x = int(f)
    if abs(x) > MAX_COUNT:
        raise InputError(f"{name} {value.strip()[:40]} is larger than {MAX_COUNT}", source=src, field=f"line {line}")
    if lo is not None and x < lo:
        word = "negative " if x < 0 else ""
        raise InputError(f"{word}{name} {x}", source=src, field=f"line {line}")
    return x


def read_csv(p: Path, *, num_experts: int | None, top_k: int | None, provenance: dict) -> RoutingStats:
    src = str(p)
    meta, rows = _lines(p)
    k = top_k or (_int(meta["top_k"], src, 0, "top_k", lo=1) if "top_k" in meta else None)
    if k is None:
        raise InputError("count matrices carry no top-k: add a '# top_k=K' line or give --top-k/--model", source=src)
    header = [c.strip().lower() for c in rows[0][1]]
    if "kind" in header:
        return _long(src, meta, rows, header, num_experts, k, provenance)
    return _wide(src, rows, num_experts, k, provenance)


def _long(src: str, meta: dict, rows: list, header: list[str], num_experts: int | None, k: int,
          provenance: dict) -> RoutingStats:
    missing = [c for c in LONG_COLUMNS if c not in header and c != "other"]
    if missing:
        raise InputError(f"header lacks column(s) {', '.join(missing)} (expected {','.join(LONG_COLUMNS)})",
                         source=src, field=f"line {rows[0][0]}")
    col = {c: header.index(c) for c in LONG_COLUMNS if c in header}
    entries = []
    for line, cells in rows[1:]:
        if len(cells) != len(header):
            raise InputError(f"{len(cells)} cells, the header has {len(header)}", source=src, field=f"line {line}")
        kind = cells[col["kind"]].strip()
        if kind not in PARTS:
            raise InputError(f"kind {kind!r} is not one of {', '.join(PARTS)}", source=src, field=f"line {line}")
        other = cells[col["other"]].strip() if "other" in col else ""
        if kind != "load" and not other:
            raise InputError(f"{kind} needs the other expert in column 'other'", source=src, field=f"line {line}")
        entries.append((kind, _int(cells[col["layer"]], src, line, "layer", lo=None),
                        _int(cells[col["expert"]], src, line, "expert id"),
                        _int(other, src, line, "expert id") if other else -1,
                        _int(cells[col["count"]], src, line, "count"), line))
    layers = tuple(sorted({e[1] for e in entries if e[0] == "load"}))
    if not layers:
        raise InputError("no load rows", source=src)
    E = num_experts or (_int(meta["num_experts"], src, 0, "num_experts", lo=1) if "num_experts" in meta else None)
    if E is None:
        E = max(max(e[2], e[3]) for e in entries) + 1
    index = {layer: i for i, layer in enumerate(layers)}
    L = len(layers)
    check_shape(L, E, k, src)  # before the count arrays exist
    arrays = {"load": np.zeros((L, E), np.int64), "coact": np.zeros((L, E, E), np.int64),
              "trans": np.zeros((max(L - 1, 0), E, E), np.int64),
              "trans_primary": np.zeros((max(L - 1, 0), E, E), np.int64)}
    seen = set()
    for kind, layer, e, f, count, line in entries:
        if layer not in index or (kind.startswith("trans") and index[layer] == L - 1):
            raise InputError(f"{kind} at layer {layer}: not one of the load rows' layers"
                             f"{' that has a next layer' if kind.startswith('trans') else ''} "
                             f"({', '.join(map(str, layers))})", source=src, field=f"line {line}")
        for x in (e, f):
            if x >= E:
                raise InputError(f"expert id {x} outside 0..{E - 1}", source=src, field=f"line {line}")
        seen.add(kind)
        if kind == "load":
            arrays[kind][index[layer], e] += count
        else:
            arrays[kind][index[layer], e, f] += count
    coact = arrays["coact"]
    if "coact" in seen and not np.tril(coact, -1).any():
        coact += coact.transpose(0, 2, 1)
    pairing = meta.get("trans_pairing", "all")
    if pairing not in ("all", "rank"):
        raise InputError(f"trans_pairing {pairing!r} is not 'all' or 'rank'", source=src)
    return stats_from_counts(arrays["load"], top_k=k, layer_numbers=layers, src=src, trans_pairing=pairing,
                             provenance=dict(provenance, layout="long"),
                             **{f"{kind}_LEE": arrays[kind] for kind in ("coact", "trans", "trans_primary")
                                if kind in seen})


def _wide(src: str, rows: list, num_experts: int | None, k: int, provenance: dict) -> RoutingStats:
    first_line, first = rows[0]
    has_header = any(not _numeric(c) for c in first)
    layer_col = has_header and first[0].strip().lower() == "layer"
    body = rows[1:] if has_header else rows
    if not body:
        raise InputError("no rows of counts", source=src)
    width = len(body[0][1])
    layers, values = [], []
    for line, cells in body:
        if len(cells) != width:
            raise InputError(f"{len(cells)} cells, line {body[0][0]} has {width}", source=src, field=f"line {line}")
        if layer_col:
            layers.append(_int(cells[0], src, line, "layer", lo=None))
            cells = cells[1:]
        values.append([_int(c, src, line, "count") for c in cells])
    load = np.asarray(values, np.int64)
    if num_experts is not None and load.shape[1] != num_experts:
        raise InputError(f"{load.shape[1]} expert columns, expected {num_experts}", source=src,
                         field=f"line {body[0][0]}")
    return stats_from_counts(load, top_k=k, layer_numbers=tuple(layers) if layer_col else tuple(range(len(values))),
                             src=src, provenance=dict(provenance, layout="wide", load_records=len(body)))


def _numeric(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def to_csv(stats: RoutingStats) -> str:
    """The long layout of `stats` (nonzero counts of the measured arrays), for `stats show --csv`."""
    pairing = "" if stats.trans_pairing == "all" else f" trans_pairing={stats.trans_pairing}"
    out = [f"# num_experts={stats.num_experts} top_k={stats.top_k}{pairing}", ",".join(LONG_COLUMNS)]
    arrays = {"load": stats.load_LE, "coact": stats.coact_LEE, "trans": stats.trans_LEE,
              "trans_primary": stats.trans_primary_LEE}
    for kind in PARTS:
        if kind not in stats.measured:
            continue
        arr = arrays[kind]
        for idx in np.argwhere(arr):
            layer = stats.layer_numbers[idx[0]]
            other = "" if kind == "load" else str(idx[2])
            out.append(f"{kind},{layer},{idx[1]},{other},{arr[tuple(idx)]}")
    return "\n".join(out) + "\n"
