"""The migration between two EP layouts: which expert copies move from which rank to which, and the bytes.

`migration(old, new, ...)` compares two phy2log [L, P] layouts slot by slot. A rank that needs a copy of
expert e of layer l it does not hold receives it from a rank that holds e in the old layout, the same node
first (NVLink), then the lowest rank; copies a rank holds in both layouts stay (even if their slot index
changes: that is a local permutation, no bytes). `max_moves` keeps the new layout's moves in slot order up to
the budget and leaves the remaining slots as they were, so the result is always a valid layout.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np


def migration(old_LP: np.ndarray, new_LP: np.ndarray, num_gpus: int, gpus_per_node: int, expert_bytes: int,
              *, max_moves: int | None = None) -> tuple[np.ndarray, list[dict]]:
    """(the layout after at most max_moves copies moved [L, P], the moves as dicts)."""
    L, P = old_LP.shape
    per_gpu = P // num_gpus
    out = old_LP.copy()
    moves: list[dict] = []
    for li in range(L):
        for r in range(num_gpus):
            have = Counter(old_LP[li, r * per_gpu:(r + 1) * per_gpu].tolist())
            want = Counter(new_LP[li, r * per_gpu:(r + 1) * per_gpu].tolist())
            need = want - have
            if not need or (max_moves is not None and len(moves) + sum(need.values()) > max_moves):
                continue
            for e, n in sorted(need.items()):
                holders = np.flatnonzero(old_LP[li] == e) // per_gpu
                same = holders[holders // gpus_per_node == r // gpus_per_node]
                src = int(same.min() if same.size else holders.min())
                moves += [{"moe_layer": li, "expert": int(e), "from_rank": src, "to_rank": r,
                           "bytes": int(expert_bytes), "nvlink": bool(same.size)} for _ in range(n)]
            out[li, r * per_gpu:(r + 1) * per_gpu] = new_LP[li, r * per_gpu:(r + 1) * per_gpu]
    for li in range(L):
        missing = set(range(int(old_LP[li].max()) + 1)) - set(out[li].tolist())
        if missing:  # a budget cut off the rank that took over an expert: keep the old rows there
            raise ValueError(f"max_moves {max_moves} leaves MoE layer {li} without experts {sorted(missing)[:4]}; "
                             "raise the budget")
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
