"""The reference placements as peers: layer-major contiguous, round-robin, random.

They reuse `moeplace.placement.baselines`; on a problem with balance per layer (where those functions may
stack one layer's experts on a GPU) the node of every item is kept and the GPUs are re-dealt
(`moeplace.peers.assign`), so every peer returns a feasible plan.
"""

from __future__ import annotations

import numpy as np

from moeplace.peers.assign import place_partition
from moeplace.peers.registry import register_peer
from moeplace.placement import baselines
from moeplace.placement.problem import Problem
from moeplace.placement.validate import is_feasible
from moeplace.solvers.affinity import Affinity


def empty_graph(num_items: int) -> Affinity:
    return Affinity(ptr=np.zeros(num_items + 1, dtype=np.int64), idx=np.zeros(0, dtype=np.int64),
                    w=np.zeros(0))


def feasible(problem: Problem, item_gpu_I: np.ndarray) -> np.ndarray:
    """`item_gpu_I` if feasible, else the same nodes with GPUs re-dealt (and nodes repaired if needed)."""
    if is_feasible(problem, item_gpu_I):
        return item_gpu_I
    return place_partition(problem, item_gpu_I // problem.gpus_per_node, empty_graph(problem.num_items))


@register_peer("layer-major", "contiguous: MoE layer 0 fills the first GPUs, then layer 1, and so on")
def layer_major(problem: Problem, seed: int = 0) -> np.ndarray:
    return feasible(problem, baselines.layer_major(problem))


@register_peer("round-robin", "item i on node i mod nodes: one layer's experts spread over many nodes")
def round_robin(problem: Problem, seed: int = 0) -> np.ndarray:
    return feasible(problem, baselines.round_robin(problem))


@register_peer("random", "a uniformly random permutation of the slots (seeded)")
def random_placement(problem: Problem, seed: int = 0) -> np.ndarray:
    return feasible(problem, baselines.random_placement(problem, seed))
