"""Who this process is: its manifest entry by (host name, LOCAL_RANK), its rendezvous and its device.

torchrun's RANK is not stable across restarts and Slurm's task order need not match the plan, so a worker
never trusts RANK: it finds the entry whose host is this machine and whose `local_gpu` is LOCAL_RANK, and
joins the process group under that entry's `rank`. No torch here: the launch tests import this module.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from moeplace.errors import InputError
from moeplace.launch.manifest import Manifest, RankEntry


class LaunchError(InputError):
    """The launch does not match the manifest (world size, host, local rank): exit code 2 on every rank."""


@dataclass(frozen=True)
class Identity:
    entry: RankEntry
    host: str
    local_rank: int
    world_size: int
    master_addr: str
    master_port: int
    use_agent_store: bool
    restart_count: int

    @property
    def rank(self) -> int:
        return self.entry.rank


def this_host(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("MOEPLACE_HOST") or socket.gethostname()


def _host_matches(name: str, candidate: str) -> bool:
    return name == candidate or name.split(".")[0] == candidate.split(".")[0]


def _int_env(env: Mapping[str, str], key: str) -> int | None:
    raw = env.get(key)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise LaunchError(f"{key}={raw!r} is not an integer") from None


def resolve_identity(manifest: Manifest, env: Mapping[str, str] | None = None, *, source: str = "manifest.json"
                     ) -> Identity:
    """Match this process to its manifest entry; every mismatch is one line naming both sides."""
    env = os.environ if env is None else env
    world = _int_env(env, "WORLD_SIZE")
    if world is not None and world != manifest.world_size:
        raise LaunchError(f"WORLD_SIZE={world} but the manifest has world_size {manifest.world_size} "
                          f"({len(manifest.hosts)} hosts x {manifest.gpus_per_node} GPUs): launch it with "
                          f"{manifest.world_size} processes", source=source, field="world_size")
    host = this_host(env)
    on_host = [r for r in manifest.ranks if _host_matches(host, r.host)]
    if not on_host:
        shown = ", ".join(manifest.hosts[:4]) + (", ..." if len(manifest.hosts) > 4 else "")
        raise LaunchError(f"host {host!r} is not in the manifest (hosts: {shown}); set MOEPLACE_HOST to "
                          f"override the host name", source=source, field="hosts")
    local = _int_env(env, "LOCAL_RANK")
    if local is None:
        local = _int_env(env, "SLURM_LOCALID")
    if local is None:
        if len(on_host) != 1:
            raise LaunchError(f"LOCAL_RANK is not set and host {host!r} runs {len(on_host)} ranks", source=source,
                              field="ranks")
        local = on_host[0].local_gpu
    matches = [r for r in on_host if r.local_gpu == local]
    if not matches:
        gpus = sorted(r.local_gpu for r in on_host)
        raise LaunchError(f"host {host!r} has no rank with local_gpu {local} (LOCAL_RANK); its ranks use GPUs "
                          f"{gpus}", source=source, field="ranks")
    addr = env.get("MASTER_ADDR") or manifest.master_addr
    port = _int_env(env, "MASTER_PORT") or manifest.master_port
    return Identity(entry=matches[0], host=host, local_rank=local, world_size=manifest.world_size,
                    master_addr=addr, master_port=port,
                    use_agent_store=env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true",
                    restart_count=_int_env(env, "TORCHELASTIC_RESTART_COUNT") or 0)


def check_manifest(manifest: Manifest, *, source: str = "manifest.json") -> None:
    """Ranks 0..world-1 each once, hosts and node indices consistent: the runtime relies on all of it."""
    ranks = sorted(r.rank for r in manifest.ranks)
    if ranks != list(range(manifest.world_size)):
        missing = sorted(set(range(manifest.world_size)) - set(ranks))
        extra = sorted({r for r in ranks if ranks.count(r) > 1} | {r for r in ranks if r >= manifest.world_size})
        raise InputError(f"ranks must be 0..{manifest.world_size - 1} once each (missing {missing[:5]}, "
                         f"duplicate or out of range {extra[:5]})", source=source, field="ranks")
    for r in manifest.ranks:
        if r.node >= len(manifest.hosts) or manifest.hosts[r.node] != r.host:
            raise InputError(f"rank {r.rank} says host {r.host!r} node {r.node}, but hosts[{r.node}] is "
                             f"{manifest.hosts[r.node] if r.node < len(manifest.hosts) else 'missing'}",
                             source=source, field="ranks")
    seen: dict[tuple[int, int], int] = {}
    for r in manifest.ranks:
        key = (r.node, r.local_gpu)
        if key in seen:
            raise InputError(f"ranks {seen[key]} and {r.rank} both use GPU {r.local_gpu} of {r.host}",
                             source=source, field="ranks")
        seen[key] = r.rank


def cuda_index(local_gpu: int, visible_devices: int) -> int:
    """Under a wrapper that pins one GPU, that GPU is cuda:0; otherwise the entry's local GPU."""
    if visible_devices == 1:
        return 0
    if local_gpu >= visible_devices:
        raise LaunchError(f"local_gpu {local_gpu} but only {visible_devices} CUDA devices are visible "
                          f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    return local_gpu
