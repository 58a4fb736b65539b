"""The process group and its store: rendezvous with a deadline, failure reports, transfers with timeouts.

Ranks meet in a TCPStore at MASTER_ADDR:MASTER_PORT (rank 0 hosts it, or torchrun's agent when
TORCHELASTIC_USE_AGENT_STORE is set) and join the process group under their manifest rank: gloo on CPU,
NCCL on CUDA. Every blocking call runs under the watchdog (`failure.Watchdog`).
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from typing import Any

from moeplace.runmodel.identity import Identity
from moeplace.runmodel.schedule import Transfer
from moeplace.runtime.deps import import_torch
from moeplace.runtime.failure import PeerFailure, Watchdog

torch = import_torch()
dist = torch.distributed

FAIL_COUNT = "nfail"


def _store(ident: Identity, timeout_s: float, *, client: bool = False):
    timeout = datetime.timedelta(seconds=timeout_s)
    master = ident.rank == 0 and not ident.use_agent_store and not client
    try:
        store = dist.TCPStore(ident.master_addr, ident.master_port, ident.world_size, master, timeout=timeout,
                              wait_for_workers=False)
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/DistNetworkError/TimeoutError
        text = str(exc).split("\n")[0]
        if "address already in use" in text.lower() or "EADDRINUSE" in text:
            raise PeerFailure(f"cannot host the rendezvous store: port {ident.master_port} on "
                              f"{ident.master_addr} is in use") from None
        raise PeerFailure(f"could not reach the rendezvous store at {ident.master_addr}:{ident.master_port} "
                          f"within {timeout_s:.0f} s (is rank 0 running?): {text}") from None
    if ident.use_agent_store:
        store = dist.PrefixStore(f"/worker/attempt_{ident.restart_count}", store)
    return dist.PrefixStore("moeplace", store)


@dataclass
class Comm:
    ident: Identity
    device: Any
    backend: str
    collective_s: float
    store: Any = None
    watch_store: Any = None
    watchdog: Watchdog | None = None
    flag: Any = None
    stats: dict = field(default_factory=dict)
    sent_bytes: dict = field(default_factory=dict)  # peer rank -> payload bytes this rank's sends carried

    @property
    def rank(self) -> int:
        return self.ident.rank

    @property
    def world(self) -> int:
        return self.ident.world_size

    def report_failure(self, message: str) -> None:
        """Tell the other ranks why this one stops (best effort: the store may be gone)."""
        if self.store is None:
            return
        n = self.store.add(FAIL_COUNT, 1)
        self.store.set(f"fail/{n}", f"rank {self.rank} failed: {message}")

    def peer_failure(self) -> str | None:
        store = self.watch_store or self.store
        if store is None:
            return None
        if store.add(FAIL_COUNT, 0) > 0:
            return store.get("fail/1").decode()
        return None

    def rendezvous(self, startup_s: float) -> None:
        """Store, then every rank counted in, then the process group; all under `startup_s`."""
        assert self.watchdog is not None
        self.watchdog.arm(startup_s + 5.0, "rendezvous")
        self.store = _store(self.ident, startup_s)
        self.watch_store = _store(self.ident, startup_s, client=True)
        self.store.add("joined", 1)
        deadline = time.monotonic() + startup_s
        while (n := self.store.add("joined", 0)) < self.world:
            if time.monotonic() > deadline:
                raise PeerFailure(f"rendezvous timed out after {startup_s:.0f} s: {n} of {self.world} ranks joined "
                                  f"at {self.ident.master_addr}:{self.ident.master_port}")
            time.sleep(0.05)
        kwargs = {}
        if self.backend == "nccl":
            kwargs["device_id"] = self.device
        dist.init_process_group(self.backend, store=dist.PrefixStore("pg", self.store), rank=self.rank,
                                world_size=self.world, timeout=datetime.timedelta(seconds=self.collective_s),
                                **kwargs)
        self.flag = torch.zeros(1, device=self.device)
        self.barrier()
        self.watchdog.disarm()

    def barrier(self, hold_us: float = 0.0) -> None:
        """A collective every rank enters: on GPU an all-reduce the compute stream waits for (no host sync).

        hold_us: first keep the device busy that long, so that the work enqueued after the barrier is on
        the stream before the device gets there (timed intervals then exclude host launch latency)."""
        if self.backend == "nccl":
            if hold_us:
                from moeplace.runtime.timing import hold_device

                hold_device(hold_us)
            dist.all_reduce(self.flag)
        else:
            dist.barrier()

    def start(self, transfer: Transfer, send_buf, recv_buf) -> list:
        """Post one transfer's sends and receives; rows are packed by peer in the schedule's order."""
        ops, a = [], 0
        row_bytes = send_buf.element_size() * (send_buf[0].numel() if send_buf.shape[0] else 0)
        for peer, rows in zip(transfer.send_peers, transfer.send_rows):
            ops.append((dist.isend, send_buf[a:a + rows.size], peer))
            self.sent_bytes[peer] = self.sent_bytes.get(peer, 0) + rows.size * row_bytes
            a += rows.size
        a = 0
        for peer, rows in zip(transfer.recv_peers, transfer.recv_rows):
            ops.append((dist.irecv, recv_buf[a:a + rows.size], peer))
            a += rows.size
        if not ops:
            return []
        if self.backend == "nccl":
            return dist.batch_isend_irecv([dist.P2POp(op, t, peer) for op, t, peer in ops])
        return [op(t, peer) for op, t, peer in ops]

    def finish(self, works: list) -> None:
        """CPU: block until done (with the collective timeout); GPU: make the current stream wait."""
        for w in works:
            if self.backend == "nccl":
                w.wait()
            elif not w.wait(datetime.timedelta(seconds=self.collective_s)):
                raise PeerFailure(f"a transfer did not finish within {self.collective_s:.0f} s")

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
