"""What a trace or statistics file may declare, checked when read (before any array is allocated).

Every number a reader takes from a file (a `.npz` member, a safetensors header, meta_info.json, a JSON
line) passes through here, so that a crafted or corrupt file ends in one `InputError` naming the file, the
field and the value, never a traceback or a MemoryError. Limits (docs/stats-format.md):

    experts per layer        2..MAX_EXPERTS (4096, as a model file)
    MoE layers               1..MAX_LAYERS (4096); layer numbers distinct, ascending, 0..MAX_LAYER_NUMBER
    top-k                    1..experts
    count cells              layers x experts^2 <= MAX_CELLS (2^28: 2 GiB per int64 count array)
    counts                   integers 0..2^62 (no floats, no NaN, no wrap-around from uint64)
    an array in a file       at most MAX_ARRAY_BYTES (16 GiB) as declared, read or not
"""

from __future__ import annotations

import numpy as np

from moeplace.errors import InputError

MAX_EXPERTS = 4096
MAX_LAYERS = 4096
MAX_LAYER_NUMBER = 1_000_000
MAX_CELLS = 1 << 28
MAX_COUNT = 1 << 62
MAX_ARRAY_BYTES = 1 << 34


def _shown(value: object) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def file_int(value: object, src: str, field: str, lo: int, hi: int) -> int:
    """A whole number from a file (a 0-d or 1-element integer array, or a JSON int) within lo..hi."""
    v = value
    if isinstance(v, np.ndarray):
        if v.size != 1 or v.ndim > 1 or not (np.issubdtype(v.dtype, np.integer)):
            raise InputError(f"must be one integer, got {_shown(v)} ({v.dtype}, shape {v.shape})", source=src,
                             field=field)
        v = v.reshape(()).item()
    elif isinstance(v, np.integer):
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise InputError(f"must be one integer, got {_shown(v)}", source=src, field=field)
    if not lo <= v <= hi:
        raise InputError(f"{v} is outside {lo}..{hi}", source=src, field=field)
    return v


def check_shape(num_layers: int, num_experts: int, top_k: int, src: str) -> None:
    """Layers, experts and top-k a reader is about to count with, before the count arrays exist."""
    if not 2 <= num_experts <= MAX_EXPERTS:
        raise InputError(f"{num_experts} experts per layer is outside 2..{MAX_EXPERTS}", source=src,
                         field="num_experts")
    if not 1 <= num_layers <= MAX_LAYERS:
        raise InputError(f"{num_layers} MoE layers is outside 1..{MAX_LAYERS}", source=src, field="layers")
    if not 1 <= top_k <= num_experts:
        raise InputError(f"top-k {top_k} is outside 1..{num_experts} (the experts per layer)", source=src,
                         field="top_k")
    if num_layers * num_experts * num_experts > MAX_CELLS:
        raise InputError(f"{num_layers} layers x {num_experts}^2 experts = {num_layers * num_experts ** 2:,} count "
                         f"cells per array, at most {MAX_CELLS:,} (2 GiB)", source=src, field="num_experts")


def layer_numbers(value: object, src: str, field: str = "layers") -> tuple[int, ...]:
    """Layer numbers from a file: a 1-d integer array (or list), distinct and ascending, 0..MAX_LAYER_NUMBER."""
    arr = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"must be a list of integer layer numbers, got {_shown(arr)} ({arr.dtype}, shape "
                         f"{arr.shape})", source=src, field=field)
    if arr.size > MAX_LAYERS:
        raise InputError(f"{arr.size} layers, at most {MAX_LAYERS}", source=src, field=field)
    out = tuple(int(x) for x in arr)
    bad = next((x for x in out if not 0 <= x <= MAX_LAYER_NUMBER), None)
    if bad is not None:
        raise InputError(f"layer number {bad} is outside 0..{MAX_LAYER_NUMBER}", source=src, field=field)
    if any(b <= a for a, b in zip(out, out[1:])):
        raise InputError(f"layer numbers {_shown(list(out))} must be distinct and ascending", source=src, field=field)
    return out


def count_array(arr: np.ndarray, src: str, field: str) -> np.ndarray:
    """A count array from a file as int64: integer dtype, every value in 0..MAX_COUNT."""
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise InputError(f"must hold integer counts, got dtype {arr.dtype}", source=src, field=field)
    if arr.size:
        lo, hi = arr.min(), arr.max()
        if lo < 0:
            raise InputError(f"negative count {lo}", source=src, field=field)
        if hi > MAX_COUNT:
            raise InputError(f"count {hi} is larger than {MAX_COUNT}", source=src, field=field)
    return arr.astype(np.int64)


def array_bytes(shape: tuple[int, ...], itemsize: int, src: str, field: str) -> int:
    """The declared size of an array, refused over MAX_ARRAY_BYTES or with a negative dimension."""
    if any(int(d) < 0 for d in shape):
        raise InputError(f"shape {tuple(shape)} has a negative dimension", source=src, field=field)
    n = itemsize
    for d in shape:
        n *= int(d)
    if n > MAX_ARRAY_BYTES:
        raise InputError(f"shape {tuple(shape)} declares {n:,} bytes, at most {MAX_ARRAY_BYTES:,} (16 GiB)",
                         source=src, field=field)
    return n
