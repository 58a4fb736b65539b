"""How the fused step (`epstep.EpStep`) moves its [W x C] rows to the peers and back: three transports, one interface.

    nccl      pack [W*C, H] locally, then all_to_all_single on the communication stream (the counts: an
              all-to-all of W int32 first)
    symm      the pack writes each peer's rows straight into that peer's symmetric receive buffer over NVLink
              (SM stores, lowest latency), then a device barrier; the counts are written the same way
    symm-ce   pack locally, then copy-engine copies into the peers' buffers, one stream per peer (no SMs taken
              from the experts: the better choice with several micro-batches), then a barrier

Per micro-batch m an `EpStep` calls, in this order: `pack` (compute stream), `dispatch` (communication
stream), the expert on `recv[m]`, `put_back` (compute stream), `combine` (communication stream); the
combine kernel then reads `back[m]`. `pick_transport` chooses one for a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moeplace.errors import InputError
from moeplace.launch.manifest import Manifest
from moeplace.runmodel.profilefit import default_transport
from moeplace.runtime.deps import import_torch

if TYPE_CHECKING:
    from moeplace.runtime.epstep import EpStep

torch = import_torch()
dist = torch.distributed


def ce_copies(pairs, streams, base) -> None:
    """dst.copy_(src) for each (dst, src), one stream per copy forked from and joined back to `base`, so that
    the copies to different peers run on different copy engines at once (also inside a CUDA graph)."""
    ev = torch.cuda.Event()
    ev.record(base)
    done = []
    for (dst, src), s in zip(pairs, streams):
        s.wait_event(ev)
        with torch.cuda.stream(s):
            dst.copy_(src)
            e = torch.cuda.Event()
            e.record(s)
            done.append(e)
    for e in done:
        base.wait_event(e)


def symm_buffer(shape, dtype, device, group):
    """A symmetric-memory tensor and its handle (raises where the build or the machine has none)."""
    import torch.distributed._symmetric_memory as symm_mem

    t = symm_mem.empty(shape, dtype=dtype, device=device)
    if hasattr(symm_mem, "enable_symm_mem_for_group"):
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                symm_mem.enable_symm_mem_for_group(group.group_name)
        except Exception:  # noqa: BLE001 - newer builds need no enabling
            pass
    return t, symm_mem.rendezvous(t, group)


class Transport:
    """The receive buffers `recv[m]`, `back[m]` (and `rcount[m]` for the counted expert), per micro-batch,
    and the four moves of one micro-batch. `allocate` runs once, on every rank together."""

    name = ""

    def allocate(self, step: EpStep) -> None:
        raise NotImplementedError

    def pack(self, step: EpStep, m: int, x) -> None:
        """On the compute stream: the rows x[gidx] (and the counts) on their way to the peers."""
        torch.index_select(x, 0, step.gidx[m], out=step.send[m])

    def dispatch(self, step: EpStep, m: int) -> None:
        """On the communication stream: the rows into every peer's `recv[m]`."""
        raise NotImplementedError

    def put_back(self, step: EpStep, m: int, y) -> None:
        """On the compute stream, after the expert: nothing unless the compute stream itself sends."""

    def combine(self, step: EpStep, m: int, y) -> None:
        """On the communication stream: the expert's rows y back into their home ranks' `back[m]`."""
        raise NotImplementedError


class Nccl(Transport):
    name = "nccl"

    def allocate(self, step: EpStep) -> None:
        W, C, H = step.world, step.C, step.H
        self.recv = step.per_micro_batch(W * C, H, dtype=step.dtype)
        self.back = step.per_micro_batch(W * C, H, dtype=step.dtype)
        if step.counted:
            self.rcount = step.per_micro_batch(W, dtype=torch.int32)

    def dispatch(self, step: EpStep, m: int) -> None:
        if step.counted:
            dist.all_to_all_single(self.rcount[m], step.scount[m], group=step.group)
        dist.all_to_all_single(self.recv[m], step.send[m], group=step.group)

    def combine(self, step: EpStep, m: int, y) -> None:
        dist.all_to_all_single(self.back[m], y, group=step.group)


class _Symmetric(Transport):
    """Receive buffers in symmetric memory: each rank writes its slice of every peer's buffer, then a barrier."""

    def allocate(self, step: EpStep) -> None:
        W, C, H, dtype, device, group = step.world, step.C, step.H, step.dtype, step.device, step.group
        self.recv, self.recv_h, self.back, self.back_h = [], [], [], []
        for _ in range(step.M):
            t, h = symm_buffer((W * C, H), dtype, device, group)
            self.recv.append(t)
            self.recv_h.append(h)
            t, h = symm_buffer((W * C, H), dtype, device, group)
            self.back.append(t)
            self.back_h.append(h)
        if step.counted:
            self.rcount, cnt_h = [], []
            for _ in range(step.M):
                t, h = symm_buffer((W,), torch.int32, device, group)
                self.rcount.append(t)
                cnt_h.append(h)
            self.peer_cnt = [[h.get_buffer(p, (W,), torch.int32, 0) for p in range(W)] for h in cnt_h]
            for h in cnt_h:
                h.barrier(channel=0)
        self.peer_recv = [[h.get_buffer(p, (W * C, H), dtype, 0) for p in range(W)] for h in self.recv_h]
        self.peer_back = [[h.get_buffer(p, (W * C, H), dtype, 0) for p in range(W)] for h in self.back_h]
        for h in self.recv_h + self.back_h:
            h.barrier(channel=0)
        torch.cuda.synchronize(device)

    def _my_rows(self, step: EpStep, buffers, m: int, p: int):
        """This rank's C rows of peer p's buffer."""
        return buffers[m][p][step.rank * step.C:(step.rank + 1) * step.C]

    def _send_counts(self, step: EpStep, m: int) -> None:
        r = step.rank
        for p in range(step.world):
            self.peer_cnt[m][p][r:r + 1].copy_(step.scount[m][p:p + 1])


class SymmStores(_Symmetric):
    name = "symm"

    def pack(self, step: EpStep, m: int, x) -> None:
        C = step.C
        for p in range(step.world):
            torch.index_select(x, 0, step.gidx[m][p * C:(p + 1) * C], out=self._my_rows(step, self.peer_recv, m, p))
            if step.counted:
                self.peer_cnt[m][p][step.rank:step.rank + 1].copy_(step.scount[m][p:p + 1])

    def dispatch(self, step: EpStep, m: int) -> None:
        self.recv_h[m].barrier(channel=0)

    def put_back(self, step: EpStep, m: int, y) -> None:
        for p in range(step.world):
            torch.index_select(y, 0, step.rows[p], out=self._my_rows(step, self.peer_back, m, p))

    def combine(self, step: EpStep, m: int, y) -> None:
        self.back_h[m].barrier(channel=0)


class SymmCopyEngine(_Symmetric):
    name = "symm-ce"

    def allocate(self, step: EpStep) -> None:
        self.copy_streams = [torch.cuda.Stream(step.device) for _ in range(step.world)]
        super().allocate(step)

    def dispatch(self, step: EpStep, m: int) -> None:
        C = step.C
        ce_copies([(self._my_rows(step, self.peer_recv, m, p), step.send[m][p * C:(p + 1) * C])
                   for p in range(step.world)], self.copy_streams, step.comm)
        if step.counted:
            self._send_counts(step, m)
        self.recv_h[m].barrier(channel=0)

    def combine(self, step: EpStep, m: int, y) -> None:
        C = step.C
        ce_copies([(self._my_rows(step, self.peer_back, m, p), y[p * C:(p + 1) * C]) for p in range(step.world)],
                  self.copy_streams, step.comm)
        self.back_h[m].barrier(channel=0)


TRANSPORTS: dict[str, type[Transport]] = {t.name: t for t in (Nccl, SymmStores, SymmCopyEngine)}


def make_transport(name: str) -> Transport:
    if name not in TRANSPORTS:
        raise ValueError(f"unknown transport {name!r} (nccl, symm or symm-ce)")
    return TRANSPORTS[name]()


def pick_transport(choice: str, manifest: Manifest, device, micro_batches: int) -> str:
    """`profilefit.default_transport` inside one node with symmetric memory (agreed by all ranks), else NCCL."""
    if choice == "nccl" or len(manifest.hosts) > 1 or (choice == "auto" and default_transport(
            manifest.world_size, micro_batches) == "nccl"):
        return "nccl"
    try:
        import torch.distributed._symmetric_memory as symm_mem

        ok = hasattr(symm_mem, "empty") and hasattr(symm_mem, "rendezvous")
    except ImportError:
        ok = False
    flag = torch.tensor([1.0 if ok else 0.0], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    if flag.item() < 1.0:
        if choice != "auto":
            raise InputError(f"--transport {choice}: this PyTorch build has no symmetric memory", field="--transport")
        return "nccl"
    if choice != "auto":
        return choice
    return default_transport(manifest.world_size, micro_batches)
