"""A worker finds its entry by (host, LOCAL_RANK), never by RANK; mismatches are one line with both sides."""

from __future__ import annotations

import pytest

from moeplace.errors import InputError
from moeplace.runmodel.identity import LaunchError, check_manifest, cuda_index, resolve_identity
from tests.runtime.helpers import manifest

M = manifest(nodes=2, gpus_per_node=2)


def env(**kw):
    base = {"MOEPLACE_HOST": "node01", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}
    base.update({k: v for k, v in kw.items() if v is not None})
    return {k: v for k, v in base.items() if v != ""}


def test_entry_by_host_and_local_rank_not_rank():
    ident = resolve_identity(M, env(RANK="0"))
    assert (ident.rank, ident.host, ident.local_rank) == (3, "node01", 1)
    assert (ident.master_addr, ident.master_port) == ("127.0.0.1", 29500)


def test_env_rendezvous_overrides_the_manifest_and_fqdn_matches():
    ident = resolve_identity(M, env(MOEPLACE_HOST="node00.cluster.local", LOCAL_RANK="0", MASTER_ADDR="10.0.0.1",
                                    MASTER_PORT="2222"))
    assert (ident.rank, ident.master_addr, ident.master_port) == (0, "10.0.0.1", 2222)


def test_slurm_localid_stands_in_for_local_rank():
    assert resolve_identity(M, env(LOCAL_RANK="", SLURM_LOCALID="0")).rank == 2


def test_world_size_mismatch():
    with pytest.raises(LaunchError) as err:
        resolve_identity(M, env(WORLD_SIZE="8"), source="run/manifest.json")
    assert str(err.value) == ("run/manifest.json: world_size: WORLD_SIZE=8 but the manifest has world_size 4 "
                              "(2 hosts x 2 GPUs): launch it with 4 processes")


def test_unknown_host_and_unknown_gpu():
    with pytest.raises(LaunchError, match="host 'gpu9' is not in the manifest \\(hosts: node00, node01\\)"):
        resolve_identity(M, env(MOEPLACE_HOST="gpu9"))
    with pytest.raises(LaunchError, match="host 'node01' has no rank with local_gpu 5 \\(LOCAL_RANK\\); its ranks "
                                          "use GPUs \\[0, 1\\]"):
        resolve_identity(M, env(LOCAL_RANK="5"))
    with pytest.raises(LaunchError, match="LOCAL_RANK is not set and host 'node01' runs 2 ranks"):
        resolve_identity(M, env(LOCAL_RANK=""))
    with pytest.raises(LaunchError, match="LOCAL_RANK='x' is not an integer"):
        resolve_identity(M, env(LOCAL_RANK="x"))


def test_manifest_consistency():
    check_manifest(M)
    bad = M.model_copy(update={"ranks": [M.ranks[0], M.ranks[0], *M.ranks[2:]]})
    with pytest.raises(InputError, match=r"ranks must be 0..3 once each \(missing \[1\]"):
        check_manifest(bad)


def test_pinned_gpu_is_cuda0():
    assert cuda_index(3, 1) == 0
    assert cuda_index(3, 8) == 3
    with pytest.raises(LaunchError, match="local_gpu 3 but only 2 CUDA devices are visible"):
        cuda_index(3, 2)
