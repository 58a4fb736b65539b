"""Score an EP placement (phy2log per layer) on token paths: balance, ranks and nodes touched, bytes.

Which copy a token uses (the engines' rules):
  vllm    every token picks one of the expert's copies uniformly (vLLM's EPLB maps a logical expert to
          replica `r` of `logical_replica_count`, spread evenly over tokens);
  sglang  SGLang's static dispatch (`compute_logical_to_rank_dispatch_physical_map`, sglang/srt/eplb/
          expert_location.py): a token on a GPU that holds a copy uses that copy; any other GPU is given one
          copy by `_fair_choices`, evenly over the copies, which is uniform over the copies on average.
Each token's home (its attention GPU, data-parallel attention) is fixed by `home_T` (default: token t on GPU
t mod num_gpus after a seeded shuffle): the expectation is exact over copy choices, sampled over homes.

Per token and MoE layer, with the chosen copies' GPUs and nodes:
  ranks_touched   distinct GPUs that receive the token; nodes_touched the distinct nodes;
  remote_nodes    nodes other than the home's; cross-node bytes = 2 x remote_nodes x token_bytes (dispatch
                  crosses once per remote node and fans out over NVLink, the combine is reduced inside each
                  node before it crosses back, as DeepEP's internode kernels do);
  gpu max/mean    the busiest GPU's expected tokens over the mean, per layer, then averaged over layers.
"""

from __future__ import annotations

import numpy as np

TOKEN_BYTES = 7168 * 2


def default_homes(num_tokens: int, num_gpus: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(num_tokens) % num_gpus


def layer_remote_nodes(phy2log_P: np.ndarray, ids_TK: np.ndarray, num_gpus: int, num_nodes: int,
                       home_T: np.ndarray | None = None) -> float:
    """Expected remote nodes per token of one layer under the vLLM rule (the quantity bytes scale with)."""
    T = ids_TK.shape[0]
    E = int(max(phy2log_P.max(), ids_TK.max())) + 1
    per_gpu, gpn = phy2log_P.size // num_gpus, num_gpus // num_nodes
    home = default_homes(T, num_gpus) if home_T is None else home_T
    held = np.zeros((E, num_nodes))
    np.add.at(held, (phy2log_P, np.arange(phy2log_P.size) // per_gpu // gpn), 1.0)
    q = (held / np.maximum(held.sum(1), 1)[:, None])[ids_TK]
    touch = 1.0 - np.prod(1.0 - q, axis=1)
    return float((touch.sum() - touch[np.arange(T), home // gpn].sum()) / T)


def score(phy2log_LP: np.ndarray, paths_TLK: np.ndarray, num_gpus: int, num_nodes: int, *, rule: str = "vllm",
          home_T: np.ndarray | None = None, token_bytes: int = TOKEN_BYTES) -> dict[str, float]:
    """Metrics of the placement on the paths (means per token and MoE layer unless named per token)."""
    if rule not in ("vllm", "sglang"):
        raise ValueError(f"rule must be vllm or sglang, got {rule!r}")
    L, P = phy2log_LP.shape
    T, L2, k = paths_TLK.shape
    assert L == L2, (L, L2)
    E = int(max(phy2log_LP.max(), paths_TLK.max())) + 1
    per_gpu, gpn = P // num_gpus, num_gpus // num_nodes
    home = default_homes(T, num_gpus) if home_T is None else np.asarray(home_T)
    home_node = home // gpn
    slot_gpu = np.arange(P) // per_gpu
    ranks = nodes = remote = 0.0
    ratio = np.zeros(L)
    for li in range(L):
        held_EG = np.zeros((E, num_gpus))
        np.add.at(held_EG, (phy2log_LP[li], slot_gpu), 1.0)
        cnt = held_EG.sum(1)
        q_EG = held_EG / np.maximum(cnt, 1)[:, None]
        ids = paths_TLK[:, li, :].astype(np.int64)
        q = q_EG[ids]                                                       # [T, k, GPUs]
        if rule == "sglang":
            mine = held_EG[ids, home[:, None]] > 0                          # [T, k]
            local = np.zeros_like(q)
            local[np.arange(T)[:, None], np.arange(k)[None, :], home[:, None]] = 1.0
            q = np.where(mine[:, :, None], local, q)
        gpu_touch = 1.0 - np.prod(1.0 - q, axis=1)                          # [T, GPUs]
        q_node = q.reshape(T, k, num_nodes, gpn).sum(-1)
        node_touch = 1.0 - np.prod(1.0 - q_node, axis=1)                    # [T, nodes]
        ranks += gpu_touch.sum()
        nodes += node_touch.sum()
        remote += node_touch.sum() - node_touch[np.arange(T), home_node].sum()
        load = q.sum(axis=(0, 1))
        ratio[li] = load.max() / load.mean()
    n = T * L
    return {
        "gpu_max_over_mean": float(ratio.mean()),
        "gpu_max_over_mean_worst_layer": float(ratio.max()),
        "ranks_touched": ranks / n,
        "nodes_touched": nodes / n,
        "remote_nodes": remote / n,
        "cross_node_bytes_per_token": 2.0 * token_bytes * remote / T,
    }
