"""Trace arrays: `topk` int [tokens, layers, k] in `.npy` or `.npz` (optional `weights`, `layers`, `num_experts`).

Rows are read in blocks straight from the file (a `.npy` is memory-mapped, a `.npz` member is streamed
out of the zip), so a trace larger than memory is fine. Conventions shared with the engine dumps:

- an id of -1 marks a missing record: a row that is all -1 at a layer means the token has no record
  there; a row with some -1 or a repeated expert is dropped at that layer (and counted);
- (SGLang dumps only, which are read whole: a column that is -1 in every row is padding and removed);
- any other id outside 0..E-1 is an error naming the token, layer and value.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from moeplace.errors import InputError
from moeplace.traces.aggregate import Accumulator
from moeplace.traces.kernels import duplicate_rows, sample_keys
from moeplace.traces.limits import MAX_EXPERTS, MAX_LAYERS, array_bytes

BLOCK_ROWS = 1 << 16
BLOCK_BYTES = 64 << 20


def npz_members(p: Path) -> list[str]:
    try:
        with zipfile.ZipFile(p) as zf:
            return [n[:-4] if n.endswith(".npy") else n for n in zf.namelist()]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"not a readable .npz, truncated or corrupt ({type(exc).__name__}: {exc})",
                         source=str(p)) from None


def npz_headers(p: Path, *, sizes: bool = True) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array of an `.npz` from its headers alone; object arrays (pickles) and, with
    `sizes` (files read whole: statistics), declared sizes over `limits.MAX_ARRAY_BYTES` are refused before
    anything is read. A streamed `topk` trace may be larger than memory: `sizes=False`."""
    out = {}
    try:
        with zipfile.ZipFile(p) as zf:
            for info in zf.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with zf.open(info) as fh:
                    shape, _, dtype = _header(fh)
                if dtype.hasobject:
                    raise InputError("holds pickled objects, which moeplace never loads", source=str(p), field=name)
                if sizes:
                    array_bytes(shape, dtype.itemsize, str(p), name)
                out[name] = (tuple(shape), dtype)
    except InputError:
        raise
    except Exception as exc:  # BadZipFile, a bad header, EOFError, OSError on truncated files
        raise InputError(f"not a readable .npz, truncated or corrupt ({type(exc).__name__}: {exc})",
                         source=str(p)) from None
    return out


def _header(fh) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(fh)
    reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    return reader.get(version, np.lib.format.read_array_header_2_0)(fh)


def read_small(p: Path, name: str) -> np.ndarray | None:
    """A small member of an `.npz` (metadata), or None when absent."""
    if name not in npz_members(p):
        return None
    shape, dtype = npz_headers(p, sizes=False)[name]
    if dtype.hasobject or int(np.prod(shape, dtype=np.int64)) > 1 << 20:
        raise InputError(f"shape {shape} is too large for metadata", source=str(p), field=name)
    try:
        with np.load(p, allow_pickle=False) as z:
            return z[name]
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError("holds pickled objects, which moeplace never loads", source=str(p),
                             field=name) from None
        raise InputError(f"unreadable array ({exc})", source=str(p), field=name) from None
    except Exception as exc:
        raise InputError(f"truncated or corrupt ({type(exc).__name__}: {exc})", source=str(p), field=name) from None


def topk_blocks(p: Path, name: str = "topk") -> tuple[tuple[int, ...], Iterator[np.ndarray]]:
    """Shape of the array and an iterator over its row blocks, never holding the whole array."""
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            if "pickle" in str(exc).lower() or "object" in str(exc).lower():
                raise InputError("holds pickled objects, which moeplace never loads", source=str(p)) from None
            raise InputError(f"not a readable .npy ({exc})", source=str(p)) from None
        except Exception as exc:
            raise InputError(f"not a readable .npy, truncated or corrupt ({type(exc).__name__}: {exc})",
                             source=str(p)) from None
        _check_dtype(arr.dtype, p, name, arr.shape)
        step = max(1, min(BLOCK_ROWS, BLOCK_BYTES // max(arr[:1].nbytes, 1)))
        return arr.shape, (np.asarray(arr[i:i + step]) for i in range(0, arr.shape[0], step))
    members = npz_members(p)
    if name not in members:
        raise InputError(f"no array '{name}' (found: {', '.join(members) or 'none'})", source=str(p))
    zf = zipfile.ZipFile(p)
    fh = zf.open(name + ".npy")
    try:
        shape, fortran, dtype = _header(fh)
    except Exception as exc:
        zf.close()
        raise InputError(f"truncated or corrupt ({type(exc).__name__}: {exc})", source=str(p), field=name) from None
    if dtype.hasobject:
        zf.close()
        raise InputError("holds pickled objects, which moeplace never loads", source=str(p), field=name)
    _check_dtype(dtype, p, name, tuple(shape))
    if fortran and len(shape) > 1:
        zf.close()
        raise InputError("is stored in Fortran order; save it C-ordered (np.ascontiguousarray)", source=str(p),
                         field=name)

    def blocks() -> Iterator[np.ndarray]:
        row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        step = max(1, min(BLOCK_ROWS, BLOCK_BYTES // max(row, 1)))  # wide rows: fewer per block
        try:
            for i in range(0, shape[0], step):
                n = min(step, shape[0] - i)
                try:
                    buf = fh.read(n * row)
                except (zipfile.BadZipFile, EOFError, OSError) as exc:
                    raise InputError(f"truncated or corrupt at token {i} ({type(exc).__name__}: {exc})",
                                     source=str(p), field=name) from None
                if len(buf) != n * row:
                    raise InputError(f"truncated: {shape[0]} tokens announced, data ends near token "
                                     f"{i + len(buf) // max(row, 1)}", source=str(p), field=name)
                yield np.frombuffer(buf, dtype=dtype).reshape((n,) + tuple(shape[1:]))
        finally:
            fh.close()
            zf.close()

    return tuple(shape), blocks()


def _check_dtype(dtype: np.dtype, p: Path, name: str, shape: tuple[int, ...] = ()) -> None:
    if not np.issubdtype(dtype, np.integer):
        raise InputError(f"must hold integer expert ids, got dtype {dtype}", source=str(p), field=name)
    if len(shape) == 3 and not (1 <= shape[1] <= MAX_LAYERS and 1 <= shape[2] <= MAX_EXPERTS and shape[0] >= 0):
        raise InputError(f"shape {tuple(shape)}: [tokens, layers, k] needs 1..{MAX_LAYERS} layers and k in "
                         f"1..{MAX_EXPERTS}", source=str(p), field=name)


def add_rows(acc: Accumulator, block_NLK: np.ndarray, first_row: int, salt: int, src: str, name: str,
             keep_cols: np.ndarray | None = None) -> None:
    """Validate a block of rows [n, L, k] (ids, -1 for missing) and count it into `acc`."""
    b = np.asarray(block_NLK, dtype=np.int64)
    if keep_cols is not None:
        b = b[:, :, keep_cols]
    E = acc.num_experts
    bad = (b < -1) | (b >= E)
    if bad.any():
        t, li, j = (int(x) for x in np.argwhere(bad)[0])
        raise InputError(f"expert id {b[t, li, j]} at token {first_row + t}, layer {li}, choice {j} outside "
                         f"0..{E - 1}", source=src, field=name)
    missing = b < 0
    absent = missing.all(axis=2)
    partial = missing.any(axis=2) & ~absent
    dup = duplicate_rows(np.where(missing, -1 - np.arange(b.shape[2]), b).reshape(-1, b.shape[2])).reshape(absent.shape)
    dup &= ~absent
    acc.drop("incomplete_row", int(partial.sum()))
    acc.drop("duplicate_expert", int((dup & ~partial).sum()))
    present = ~(absent | partial | dup)
    keep = present.any(axis=1)
    rows = np.flatnonzero(keep)
    b = np.where(present[:, :, None], b, 0)[rows]
    order = first_row + rows.astype(np.int64)
    acc.add_tokens(b, sample_keys(salt, order), order, None if present[rows].all() else present[rows])
