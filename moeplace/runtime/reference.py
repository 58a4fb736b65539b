"""The single-process reference: the same experts, routing and inputs, with no placement at all.

    x_{l+1}[t] = x_l[t] + sum_j gate[t, l, j] * expert_{l, paths[t, l, j]}(x_l[t])

Every flow the runtime executes computes this function; only where the vectors travel differs. The
reference runs in float64 by default, the ground truth against which the distributed result is measured.
"""

from __future__ import annotations

import numpy as np

from moeplace.runtime.deps import import_torch
from moeplace.runtime.experts import Expert

torch = import_torch()


def reference_forward(x0, paths_TLK: np.ndarray, gates_TLK: np.ndarray, experts: dict[tuple[int, int], Expert],
                      *, dtype=torch.float64):
    """x0 [T, hidden] -> x_L [T, hidden] in `dtype`; experts maps (moe_layer, expert) to its weights."""
    x = x0.to(dtype)
    T, L, K = paths_TLK.shape
    for ml in range(L):
        acc = torch.zeros_like(x)
        for e in np.unique(paths_TLK[:, ml, :]):
            t, j = np.nonzero(paths_TLK[:, ml, :] == e)
            ex = experts[(ml, int(e))]
            y = ex.__class__(ex.moe_layer, ex.expert, ex.activation, ex.w_in.to(dtype), ex.w_out.to(dtype))(
                x[torch.as_tensor(t)])
            g = torch.as_tensor(gates_TLK[t, ml, j], dtype=dtype)[:, None]
            acc.index_add_(0, torch.as_tensor(t), g * y)
        x = x + acc
    return x


def relative_error(out, ref) -> float:
    """||out - ref|| / ||ref|| in float64 (NaN never passes: it makes the error NaN)."""
    o, r = out.double(), ref.double()
    return float(torch.linalg.vector_norm(o - r) / torch.linalg.vector_norm(r))
