"""Shared fixtures: tiny models and clusters, and the real routing data beside the repository."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moeplace.placement.presets import load_cluster, load_model

REPO = Path(__file__).resolve().parents[1]


def shared_routing_dir() -> Path:
    """`../shared/data/routing` beside the repository (present in CI and in every session)."""
    return REPO.parent / "shared" / "data" / "routing"


@pytest.fixture
def flame_npz() -> Path:
    path = shared_routing_dir() / "flame-moe-290m" / "encoder_2048tok.npz"
    if not path.is_file():
        pytest.skip(f"real FLAME-MoE trace not found at {path}")
    return path


@pytest.fixture
def tiny_model():
    """2 MoE layers (model layers 2 and 3) x 4 experts, top-2, 16-wide vectors in bf16 (32 B per token)."""
    return load_model(None, name="tiny", num_layers=3, dense_layers=[1], num_experts=4, top_k=2, hidden=16,
                      expert_hidden=8, num_heads=2, head_dim=8)


@pytest.fixture
def tiny_cluster():
    """2 nodes x 4 GPUs under one leaf: items 0-3 fit node 0, items 4-7 node 1."""
    return load_cluster(None, name="tiny", num_nodes=2, gpus_per_node=4, topology={"nodes_per_leaf": 2,
                                                                                  "leaves_per_pod": 1})


def paths(*rows) -> np.ndarray:
    """Token paths int32 [tokens, layers, k] from nested lists."""
    return np.asarray(rows, dtype=np.int32)


def run_cli(argv, capsys):
    """(exit code, stdout, stderr) of `moeplace ARGV` run in-process."""
    from moeplace.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err
