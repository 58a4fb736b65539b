"""A plan's traffic as GPU-to-GPU expected bytes: the transfers the objective counts, for routing.

`problem_gpu_traffic(problem, item_gpu_I)` applies the objective's dedup rule (`moeplace.placement.cost.
dedup_columns`) and emits each transfer it counts, with its source and destination GPU:

  * targets on the same GPU as an earlier target of the hyperedge are skipped (no transfer);
  * a target on the source's GPU costs nothing; on the source's node: NVLink from the source;
  * with node dedup the first target on a remote node receives the vector over the network from the
    source, and every later target on that node receives it over NVLink from that first target;
  * a HOME source (the token's attention GPU, uniform over all GPUs) sends to the first target on each
    node from every GPU with 1/num_gpus of the bytes (the uniform average cost.py uses).

So the tier of every flow (`Fabric.gpu_tier`) summed with its bytes gives the objective's bytes by tier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moeplace.placement.cost import dedup_columns
from moeplace.placement.problem import Problem
from moeplace.placement.traffic import HOME, PAD


@dataclass(frozen=True, eq=False)
class GpuTraffic:
    """F flows, sorted by (src, dst), one per GPU pair: bytes_F expected bytes per token src -> dst."""

    src_gpu_F: np.ndarray
    dst_gpu_F: np.ndarray
    bytes_F: np.ndarray

    @property
    def total_bytes(self) -> float:
        return float(self.bytes_F.sum())


def problem_gpu_traffic(problem: Problem, item_gpu_I: np.ndarray) -> GpuTraffic:
    tr = problem.traffic
    G, NG = problem.gpus_per_node, problem.num_gpus
    item_gpu = np.asarray(item_gpu_I, dtype=np.int64)
    src, dst, nbytes = tr.src_H, tr.dst_HK, tr.bytes_H
    is_home = src == HOME
    g_src = np.where(is_home, -1, item_gpu[np.maximum(src, 0)])
    valid = dst != PAD
    gd = np.where(valid, item_gpu[np.maximum(dst, 0)], -1)
    home_in = np.zeros(NG)
    pairs_s, pairs_d, pairs_b = [], [], []

    def emit(mask, s, d):
        pairs_s.append(s[mask])
        pairs_d.append(d[mask])
        pairs_b.append(nbytes[mask])

    for c in dedup_columns(np.where(is_home, HOME, g_src), gd, G, relay=True):
        g = gd[:, c.j]
        home_in += np.bincount(g[c.home], weights=nbytes[c.home], minlength=NG)
        emit(c.relayed & is_home, c.relay_gpu, g)
        emit(c.nvlink | c.network, g_src, g)
        emit(c.relayed & ~is_home, c.relay_gpu, g)
    targets = np.flatnonzero(home_in)
    if targets.size:
        pairs_s.append(np.repeat(np.arange(NG), targets.size))
        pairs_d.append(np.tile(targets, NG))
        pairs_b.append(np.tile(home_in[targets] / NG, NG))
    s = np.concatenate(pairs_s) if pairs_s else np.zeros(0, dtype=np.int64)
    d = np.concatenate(pairs_d) if pairs_d else np.zeros(0, dtype=np.int64)
    b = np.concatenate(pairs_b) if pairs_b else np.zeros(0)
    keys, inverse = np.unique(s.astype(np.int64) * NG + d, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=b, minlength=keys.size)
    return GpuTraffic(src_gpu_F=keys // NG, dst_gpu_F=keys % NG, bytes_F=summed)


def bytes_by_tier(problem: Problem, traffic: GpuTraffic) -> np.ndarray:
    """float [tiers]: the flows' bytes by `Fabric.gpu_tier` (equals the objective's bytes_by_tier)."""
    from moeplace.topologies.base import NUM_TIERS

    tier = problem.fabric.gpu_tier(traffic.src_gpu_F, traffic.dst_gpu_F)
    return np.bincount(tier, weights=traffic.bytes_F, minlength=NUM_TIERS)
