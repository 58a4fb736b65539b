"""Reference placements every plan is compared with: layer-major, round-robin, random.

Each is a pure function of the problem (and a seed) returning `item_gpu_I`, feasible under capacity; with
balance per layer on, the solver must be used instead (these ignore it where it cannot hold).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from moeplace.placement.problem import Problem


def _slots_in_order(problem: Problem) -> np.ndarray:
    """GPU of each slot, slots numbered GPU-major: slot s is on GPU s // experts_per_gpu."""
    return np.arange(problem.num_gpus * problem.experts_per_gpu) // problem.experts_per_gpu


def layer_major(problem: Problem) -> np.ndarray:
    """Contiguous: the experts of MoE layer 0 fill the first GPUs, then layer 1, and so on."""
    return _slots_in_order(problem)[: problem.num_items].copy()


def round_robin(problem: Problem) -> np.ndarray:
    """Item i on node i mod nodes: consecutive experts of one layer land on different nodes."""
    N, cap = problem.num_nodes, problem.node_capacity
    i = np.arange(problem.num_items)
    node = i % N
    rank_in_node = i // N
    if rank_in_node.max() >= cap:  # more items than nodes x capacity cannot happen (checked in Problem)
        raise AssertionError("round-robin overflow")
    return node * problem.gpus_per_node + rank_in_node // problem.experts_per_gpu


def random_placement(problem: Problem, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    slots = _slots_in_order(problem)
    return slots[rng.permutation(slots.size)[: problem.num_items]].copy()


BASELINES: dict[str, Callable[[Problem], np.ndarray]] = {
    "layer-major": layer_major,
    "round-robin": round_robin,
    "random": random_placement,
}
