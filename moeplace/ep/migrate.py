"""The migration between two EP layouts: which expert copies move from which rank to which, and the bytes.

`migration(old, new, ...)` compares two phy2log [L, P] layouts rank by rank (a rank's slots as a multiset:
reordering inside a rank moves no bytes). A rank that needs a copy of expert e of layer l that it does not
hold receives it from a rank that holds e in the old layout, the same node first (NVLink), then the lowest
rank (every copy is read from the old layout before any slot is overwritten, as the engines' rearrangement
does with its buffers). With `max_moves`, whole (layer, rank) changes are taken in order while they fit the
budget and leave every expert of the layer with a copy; the others keep their old slots, so the result is
always a layout the engines can run.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np


def migration(old_LP: np.ndarray, new_LP: np.ndarray, num_gpus: int, gpus_per_node: int, expert_bytes: int,
              *, max_moves: int | None = None) -> tuple[np.ndarray, list[dict]]:
    """(the layout after the moves [L, P], the moves as dicts in the order to apply them)."""
    L, P = old_LP.shape
    if new_LP.shape != (L, P):
        raise ValueError(f"layouts differ in shape: {old_LP.shape} and {new_LP.shape}")
    per_gpu = P // num_gpus
    out = old_LP.copy()
    moves: list[dict] = []
    for li in range(L):
        experts = set(old_LP[li].tolist())
        for r in range(num_gpus):
            rows = slice(r * per_gpu, (r + 1) * per_gpu)
            need = Counter(new_LP[li, rows].tolist()) - Counter(old_LP[li, rows].tolist())
            n = sum(need.values())
            if not n or (max_moves is not None and len(moves) + n > max_moves):
                continue
            trial = out[li].copy()
            trial[rows] = new_LP[li, rows]
            if set(trial.tolist()) != experts:
                continue
            out[li] = trial
            for e, c in sorted(need.items()):
                holders = np.flatnonzero(old_LP[li] == e) // per_gpu
                same = holders[holders // gpus_per_node == r // gpus_per_node]
                src = int(same.min() if same.size else holders.min())
                moves += [{"moe_layer": li, "expert": int(e), "from_rank": src, "to_rank": r,
                           "bytes": int(expert_bytes), "nvlink": bool(same.size)} for _ in range(c)]
    return out, moves


def migration_json(moves: list[dict], *, num_gpus: int, num_slots: int) -> str:
    """The migration file: totals, then one move per line in the order to apply them."""
    total = sum(m["bytes"] for m in moves)
    cross = sum(m["bytes"] for m in moves if not m["nvlink"])
    head = {"format": "moeplace.ep-migration", "format_version": 1, "num_gpus": num_gpus, "num_slots": num_slots,
            "num_moves": len(moves), "bytes_moved": total, "bytes_across_nodes": cross}
    lines = [json.dumps(head)[:-1] + ', "moves": [']
    lines += ["  " + json.dumps(m) + ("," if i < len(moves) - 1 else "") for i, m in enumerate(moves)]
    return "\n".join(lines) + "\n]}\n"
