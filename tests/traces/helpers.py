"""Shared helpers of the trace tests: sample paths, brute-force counts, the CLI runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import run_cli as run  # noqa: F401  (re-exported to the traces tests)

DATA = Path(__file__).resolve().parents[1] / "data" / "routing"
FLAME_NPZ = DATA / "flame-moe-290m" / "encoder_512tok.npz"
FLAME_JSONL = DATA / "flame-moe-290m" / "encoder_512tok.jsonl"
COUNT_FIELDS = ("load_LE", "coact_LEE", "trans_LEE", "trans_primary_LEE", "tokens_L", "trans_tokens_L1",
                "trans_dropped_L1")


def flame_topk() -> np.ndarray:
    with np.load(FLAME_NPZ) as z:
        return z["topk"]


def flame_sequence() -> np.ndarray:
    with np.load(FLAME_NPZ) as z:
        return z["sequence"]


def brute_counts(paths, E, present=None):
    """Counts by definition, one token at a time (the reference for the vectorised kernels)."""
    paths = np.asarray(paths)
    N, L, k = paths.shape
    present = np.ones((N, L), bool) if present is None else present
    load = np.zeros((L, E), int)
    coact = np.zeros((L, E, E), int)
    trans = np.zeros((L - 1, E, E), int)
    prim = np.zeros((L - 1, E, E), int)
    for t in range(N):
        for li in range(L):
            if not present[t, li]:
                continue
            for e in paths[t, li]:
                load[li, e] += 1
                for f in paths[t, li]:
                    if e != f:
                        coact[li, e, f] += 1
            if li + 1 < L and present[t, li + 1]:
                for i, e in enumerate(paths[t, li]):
                    for f in paths[t, li + 1]:
                        trans[li, e, f] += 1
                        if i == 0:
                            prim[li, e, f] += 1
    return load, coact, trans, prim


def assert_same_counts(a, b, fields=COUNT_FIELDS):
    for name in fields:
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape and np.array_equal(x, y), name


def assert_error(code, err, expected):
    assert code == 2
    assert err == f"error: {expected}\n"
