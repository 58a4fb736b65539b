"""The statistics `.npz` file (format versions 1 and 2) and merging statistics.

Version 2 adds, beside version 1's arrays: `tokens_per_layer`, `trans_tokens`, `trans_dropped`,
`dropped_records` (JSON), `measured`, `trans_pairing`, `paths_key` and `keep_paths`. Version 1 files still
load (every token present at every layer, nothing dropped, everything measured). docs/stats-format.md
lists every key with its dtype and shape.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np

from moeplace.errors import InputError
from moeplace.fileio import write_bytes
from moeplace.traces.limits import MAX_COUNT, MAX_EXPERTS, check_shape, count_array, file_int, layer_numbers
from moeplace.traces.stats import FORMAT_VERSION, PARTS, REQUIRED_KEYS, SUPPORTED_VERSIONS, RoutingStats, bottom_k


def stats_arrays(s: RoutingStats) -> dict[str, np.ndarray]:
    arrays = {
        "format_version": np.int64(FORMAT_VERSION),
        "load": s.load_LE, "coact": s.coact_LEE, "trans": s.trans_LEE, "trans_primary": s.trans_primary_LEE,
        "num_tokens": np.int64(s.num_tokens), "top_k": np.int64(s.top_k),
        "layers": np.asarray(s.layer_numbers, dtype=np.int64),
        "provenance": np.str_(json.dumps(s.provenance, sort_keys=True)),
        "tokens_per_layer": s.tokens_L, "trans_tokens": s.trans_tokens_L1, "trans_dropped": s.trans_dropped_L1,
        "dropped_records": np.str_(json.dumps(s.dropped_records, sort_keys=True)),
        "measured": np.asarray(s.measured, dtype=np.str_), "trans_pairing": np.str_(s.trans_pairing),
        "keep_paths": np.int64(-1 if s.keep_paths is None else s.keep_paths),
    }
    if s.paths_TLK is not None:
        arrays["paths"] = s.paths_TLK
        arrays["paths_key"] = s.paths_key_T
    return arrays


def npz_bytes(arrays: dict[str, np.ndarray], *, level: int = 1) -> bytes:
    """An `.npz` (what `np.load` reads) of the arrays, deflated at `level` (1: about 7 times faster than
    `np.savez_compressed`'s 6, a path sample's file about 40% larger), with fixed member times: the same arrays give
    the same bytes."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for key, val in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(val), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)
    return buf.getvalue()


def save_stats(s: RoutingStats, path: str | Path) -> None:
    write_bytes(path, npz_bytes(stats_arrays(s)))


def read_npz(p: Path) -> dict[str, np.ndarray]:
    """Every array of an `.npz`, refusing pickles and naming the file in every error."""
    if not p.is_file():
        raise InputError("file not found", source=str(p))
    from moeplace.traces.arrays import npz_headers

    npz_headers(p)  # every member's declared dtype and size checked before any is read
    try:
        with np.load(p, allow_pickle=False) as z:
            return {key: z[key] for key in z.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError("holds pickled objects, which moeplace never loads", source=str(p)) from None
        raise InputError(f"not a readable .npz ({exc})", source=str(p)) from None
    except Exception as exc:  # zipfile.BadZipFile, EOFError, OSError on truncated files
        raise InputError(f"not a readable .npz, truncated or corrupt ({type(exc).__name__}: {exc})",
                         source=str(p)) from None


def load_stats_file(path: str | Path) -> RoutingStats:
    p = Path(path)
    data = read_npz(p)
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise InputError(f"missing array(s) {', '.join(missing)} (is this a moeplace statistics file?)",
                         source=str(p))
    return stats_from_arrays(data, str(p))


def stats_from_arrays(data: dict[str, np.ndarray], src: str) -> RoutingStats:
    version = file_int(data["format_version"], src, "format_version", 0, 1 << 31)
    if version not in SUPPORTED_VERSIONS:
        raise InputError(f"format_version {version} is not supported (expected one of "
                         f"{', '.join(map(str, SUPPORTED_VERSIONS))})", source=src, field="format_version")
    load = data["load"]
    if load.ndim != 2:
        raise InputError(f"must be [layers, experts], got shape {load.shape}", source=src, field="load")
    L, E = load.shape
    top_k = file_int(data["top_k"], src, "top_k", 1, MAX_EXPERTS)
    check_shape(L, E, top_k, src)
    Lt = max(L - 1, 0)
    shapes = {"coact": (L, E, E), "trans": (Lt, E, E), "trans_primary": (Lt, E, E)}
    if version >= 2:
        shapes.update({"tokens_per_layer": (L,), "trans_tokens": (Lt,), "trans_dropped": (Lt,)})
    for key, shape in shapes.items():
        if key not in data:
            raise InputError("missing array", source=src, field=key)
        if data[key].shape != shape:
            raise InputError(f"shape {data[key].shape} does not match load's {L} layers x {E} experts "
                             f"(expected {shape})", source=src, field=key)
    counts = {key: count_array(data[key], src, key) for key in ("load", "coact", "trans", "trans_primary",
                                                                "tokens_per_layer", "trans_tokens", "trans_dropped")
              if key in data}
    num_tokens = file_int(data["num_tokens"], src, "num_tokens", 0, MAX_COUNT)
    paths = data.get("paths")
    keys = data.get("paths_key")
    if paths is not None:
        if paths.ndim != 3 or paths.shape[1:] != (L, top_k):
            raise InputError(f"shape {paths.shape} does not match [tokens, {L}, {top_k}]", source=src, field="paths")
        if not np.issubdtype(paths.dtype, np.integer):
            raise InputError(f"must hold integer expert ids, got dtype {paths.dtype}", source=src, field="paths")
        if paths.size and (paths.min() < 0 or paths.max() >= E):
            bad = int(paths.max()) if paths.max() >= E else int(paths.min())
            raise InputError(f"expert id {bad} outside 0..{E - 1}", source=src, field="paths")
        if keys is not None and (keys.shape != (paths.shape[0],) or not np.issubdtype(keys.dtype, np.integer)):
            raise InputError(f"shape {keys.shape} ({keys.dtype}) does not match paths' {paths.shape[0]} tokens",
                             source=src, field="paths_key")
    layers = layer_numbers(data["layers"], src)
    if len(layers) != L:
        raise InputError(f"{len(layers)} layer numbers for {L} layers", source=src, field="layers")
    extra: dict = {}
    if version >= 2:
        measured = data.get("measured", np.asarray(PARTS))
        if measured.ndim > 1 or measured.dtype.kind != "U":
            raise InputError(f"must be a list of names, got {measured.dtype} shape {measured.shape}", source=src,
                             field="measured")
        measured = tuple(str(x) for x in np.atleast_1d(measured))
        unknown = [m for m in measured if m not in PARTS]
        if unknown or "load" not in measured:
            raise InputError(f"must name load and only {', '.join(PARTS)}, got {list(measured)[:8]}", source=src,
                             field="measured")
        pairing = str(data.get("trans_pairing", "all"))
        if pairing not in ("all", "rank"):
            raise InputError(f"must be 'all' or 'rank', got {pairing[:60]!r}", source=src, field="trans_pairing")
        keep = file_int(data.get("keep_paths", np.int64(-1)), src, "keep_paths", -1, MAX_COUNT)
        dropped = _json(data.get("dropped_records"), src, "dropped_records")
        bad = next(((k, v) for k, v in dropped.items() if isinstance(v, bool) or not isinstance(v, int)
                    or not 0 <= v <= MAX_COUNT), None)
        if bad is not None:
            raise InputError(f"{bad[0][:60]!r}: {str(bad[1])[:60]!r} is not a count", source=src,
                             field="dropped_records")
        extra = dict(tokens_L=counts["tokens_per_layer"], trans_tokens_L1=counts["trans_tokens"],
                     trans_dropped_L1=counts["trans_dropped"], dropped_records=dropped,
                     measured=measured, trans_pairing=pairing, keep_paths=None if keep < 0 else keep)
    return RoutingStats(load_LE=counts["load"], coact_LEE=counts["coact"], trans_LEE=counts["trans"],
                        trans_primary_LEE=counts["trans_primary"], num_tokens=num_tokens, top_k=top_k,
                        layer_numbers=layers, paths_TLK=None if paths is None else paths.astype(np.int32),
                        paths_key_T=None if keys is None or paths is None else keys.astype(np.uint64),
                        provenance=_json(data.get("provenance"), src, "provenance"), **extra)


def _json(value: np.ndarray | None, src: str, name: str) -> dict:
    if value is None:
        return {}
    if value.ndim != 0 or value.dtype.kind != "U":
        raise InputError(f"must be one JSON string, got {value.dtype} shape {value.shape}", source=src, field=name)
    try:
        out = json.loads(str(value))
    except RecursionError:
        raise InputError("is nested too deeply", source=src, field=name) from None
    except (json.JSONDecodeError, ValueError):
        raise InputError(f"is not JSON: {str(value)[:60]!r}", source=src, field=name) from None
    if not isinstance(out, dict):
        raise InputError(f"must be a JSON object, got {type(out).__name__}", source=src, field=name)
    return out


def merge(a: RoutingStats, b: RoutingStats) -> RoutingStats:
    """Statistics of two disjoint token sets: counts add, the path sample is the bottom-k of both."""
    for name, x, y in (("layers", a.layer_numbers, b.layer_numbers), ("experts", a.num_experts, b.num_experts),
                       ("top_k", a.top_k, b.top_k), ("measured", sorted(a.measured), sorted(b.measured)),
                       ("trans_pairing", a.trans_pairing, b.trans_pairing)):
        if x != y:
            raise InputError(f"cannot merge statistics with different {name}: {x} and {y}", field=name)
    paths = keys = None
    keep = None if a.keep_paths is None and b.keep_paths is None else max(
        x for x in (a.keep_paths, b.keep_paths) if x is not None)
    if a.has("paths") or b.has("paths"):
        both = [s for s in (a, b) if s.paths_TLK is not None]
        paths = np.concatenate([s.paths_TLK for s in both])
        keys = np.concatenate([s.paths_key_T for s in both])
        sel = bottom_k(keys, keep)
        paths, keys = paths[sel], keys[sel]
    dropped = dict(a.dropped_records)
    for key, n in b.dropped_records.items():
        dropped[key] = dropped.get(key, 0) + n
    parts = [p for s in (a, b) for p in (s.provenance.get("parts", [s.provenance])
                                         if s.provenance.get("source") == "merged" else [s.provenance])]
    return dataclasses.replace(
        a, load_LE=a.load_LE + b.load_LE, coact_LEE=a.coact_LEE + b.coact_LEE, trans_LEE=a.trans_LEE + b.trans_LEE,
        trans_primary_LEE=a.trans_primary_LEE + b.trans_primary_LEE, num_tokens=a.num_tokens + b.num_tokens,
        paths_TLK=paths, paths_key_T=keys, tokens_L=a.tokens_L + b.tokens_L,
        trans_tokens_L1=a.trans_tokens_L1 + b.trans_tokens_L1, trans_dropped_L1=a.trans_dropped_L1 + b.trans_dropped_L1,
        dropped_records=dropped, keep_paths=keep, provenance={"source": "merged", "parts": parts})
