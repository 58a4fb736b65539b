"""The fused engine (the ep flow, one expert of every MoE layer on every rank): one `EpStep` graph per layer.

Home tokens of rank r are the step's tokens t with t mod world = r (as in the generic schedules), so both
paths compute the same function on the same routing. Layer l+1 reads layer l's output buffer in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from moeplace.launch.manifest import Manifest
from moeplace.placement.flows import get_flow
from moeplace.runtime.counted import LAYOUTS, tune_counted
from moeplace.runtime.deps import import_torch
from moeplace.runtime.epstep import EpStep
from moeplace.runtime.expertops import tune_expert
from moeplace.runtime.timing import StepClock
from moeplace.runtime.transports import pick_transport

if TYPE_CHECKING:
    from moeplace.runtime.expert_runner import ExpertRunner
    from moeplace.runtime.rank_run import Rank, Work

torch = import_torch()


def fused_eligible(manifest: Manifest, tokens: int, micro_batches: int) -> str | None:
    """None if the fused step can run this manifest, else why not (one line)."""
    m, W = manifest.model, manifest.world_size
    if get_flow(manifest.flow).hidden_at != "home" or not get_flow(manifest.flow).engine_layout:
        return f"flow is {manifest.flow}, the fused step runs an engine layout that returns tokens home (ep)"
    if m.num_experts != W:
        return f"{m.num_experts} experts per layer on {W} ranks (the fused step needs one per rank)"
    for r in manifest.ranks:
        layers = sorted(e.moe_layer for e in r.experts)
        if layers != list(range(m.num_moe_layers)):
            return f"rank {r.rank} does not hold exactly one expert of every MoE layer"
    if tokens % (W * micro_batches):
        return f"tokens per step {tokens} not divisible by {W} ranks x {micro_batches} micro-batches"
    return None


def fused_capacity(routing, lut_LE: np.ndarray, Tg: int, W: int, micro_batches: int) -> int:
    """Rows per peer per micro-batch: the most any rank sends any peer in the run's routing draws (every
    rank draws the same routing, so every rank computes the same number), plus 10%, rounded up to 16, at
    most the micro-batch. The fused step then never drops a token on this run's routing."""
    Tm = Tg // micro_batches
    worst = 0
    for r in routing:
        T = r.paths_TLK.shape[0]
        for l in range(r.paths_TLK.shape[1]):
            dest = lut_LE[l][r.paths_TLK[:, l, :]]
            home = np.arange(T) % W
            mb = (np.arange(T) // W) // Tm
            for d in range(W):
                hit = (dest == d).any(axis=1)
                counts = np.bincount((home * micro_batches + mb)[hit], minlength=W * micro_batches)
                worst = max(worst, int(counts.max()))
    return min(Tm, 16 * -(-int(worst * 1.1 + 1) // 16))


def received_rows(routing, lut_LE: np.ndarray, Tg: int, W: int, micro_batches: int, C: int) -> float:
    """Rows the busiest rank's expert runs on per micro-batch with the counted expert: per rank the rows its
    peers send it (each at most C), averaged over routing draws, layers and micro-batches; the maximum."""
    Tm = Tg // micro_batches
    total = np.zeros(W)
    n = 0
    for r in routing:
        T = r.paths_TLK.shape[0]
        home = np.arange(T) % W
        mb = (np.arange(T) // W) // Tm
        for l in range(r.paths_TLK.shape[1]):
            dest = lut_LE[l][r.paths_TLK[:, l, :]]
            for m in range(micro_batches):
                for d in range(W):
                    hit = (dest == d).any(axis=1) & (mb == m)
                    total[d] += np.minimum(np.bincount(home[hit], minlength=W), C).sum()
                n += 1
    return float(total.max() / max(n, 1))


def _counted_pays(fn, padded_us: float, rows: float, W: int, C: int, device) -> bool:
    """Whether the counted expert at the rows this run's routing sends (`received_rows`) beats the padded
    expert on all W x C rows, measured; every rank must agree (the count exchange is a collective), so the
    answer is the all-ranks minimum."""
    from moeplace.runtime.counted import _split
    from moeplace.runtime.expertops import graph_time_us

    ok = False
    if fn is not None:
        counts = _split(int(round(rows)), W, C, torch.Generator().manual_seed(2)).to(device)
        x = torch.randn(W * C, fn.H, device=device, dtype=fn.w_in.dtype)
        out = torch.empty_like(x)
        ok = graph_time_us(lambda t: fn(t, counts, out=out), x, reps=15) < padded_us
    return _agree(ok, device)


def _agree(ok: bool, device) -> bool:
    """True only if every rank says so (all-reduce MIN; a lone process decides alone)."""
    flag = torch.tensor([1.0 if ok else 0.0], device=device)
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item() >= 1.0)


class FusedRun:
    def __init__(self, manifest: Manifest, rank: int, experts: list, routing, x0, *, micro_batches: int,
                 transport: str, device, dtype, graphs: bool, counted: bool = True) -> None:
        W = manifest.world_size
        L, k = manifest.model.num_moe_layers, manifest.model.top_k
        T = x0.shape[0]
        self.rank, self.W, self.L = rank, W, L
        self.Tg = T // W
        self.home = np.arange(rank, T, W)
        lut = np.zeros((L, manifest.model.num_experts), dtype=np.int64)
        for entry in manifest.ranks:
            for e in entry.experts:
                lut[e.moe_layer, e.expert] = entry.rank
        by_layer = {e.moe_layer: e for e in experts}
        C = fused_capacity(routing, lut, self.Tg, W, micro_batches)
        self.received_rows = received_rows(routing, lut, self.Tg, W, micro_batches, C)
        x = x0[torch.as_tensor(self.home, device=x0.device)].contiguous()
        self.x0 = x.clone()
        self.layers, self.choices, self.counted = [], [], []
        layouts, use_counted = LAYOUTS, counted and device.type == "cuda"
        for l in range(L):
            choice = tune_expert(by_layer[l], W * C) if device.type == "cuda" else None
            fn = None
            if use_counted:  # the layout timed on the first layer serves all (same dims)
                fn = (tune_counted(by_layer[l], W, C, layouts=layouts) if l == 0 else
                      tune_counted(by_layer[l], W, C, layouts=layouts, probes=()))[0]
                if l == 0:
                    use_counted = _counted_pays(fn, choice.us, self.received_rows, W, C, device)
                    fn = fn if use_counted else None
                    if fn is not None:
                        layouts = {n: v for n, v in LAYOUTS.items() if v == (fn.small, fn.large)}
                elif not _agree(fn is not None, device):
                    fn = None
            self.choices.append(choice)
            self.counted.append(fn is not None)
            step = EpStep(rank=rank, world=W, expert=fn or (choice.fn if choice else by_layer[l]), hidden=x.shape[1],
                          k=k, tokens=self.Tg, capacity=C, micro_batches=micro_batches, transport=transport,
                          device=device, dtype=dtype, lut=torch.as_tensor(lut[l]), x=x, counted=fn is not None)
            self.layers.append(step)
            x = step.out
        self.first_x = self.layers[0].x
        self.variants = []
        for r in routing:
            tk = torch.as_tensor(r.paths_TLK[self.home].astype(np.int64), device=device)
            g = torch.as_tensor(r.gates_TLK[self.home], device=device)
            self.variants.append((tk, g))
        self.load(0)
        if graphs:
            for step in self.layers:
                step.capture()

    def load(self, v: int) -> None:
        tk, g = self.variants[v % len(self.variants)]
        self.first_x.copy_(self.x0)
        for l, step in enumerate(self.layers):
            step.topk.copy_(tk[:, l, :])
            step.gates.copy_(g[:, l, :])

    def step(self, comm, clock: StepClock | None = None, layer_sync: bool = False):
        for step in self.layers:
            if layer_sync:
                comm.barrier(hold_us=200.0)
                if clock is not None:
                    clock.mark()
            step.run()
            if layer_sync and clock is not None:
                clock.mark()
        return self.layers[-1].out

    def overflow(self) -> int:
        return max(step.max_count() - step.C for step in self.layers)

    @property
    def out_tokens(self) -> np.ndarray:
        return self.home


class FusedStep:
    """The fused EP step for a run (`FusedRun`): whole [W x C] buffers on the chosen transport."""

    engine = "epstep"

    def __init__(self, run: Rank, runners: list[ExpertRunner], work: Work) -> None:
        run.at("building the fused step (tuning experts, capturing graphs)")
        self.transport = pick_transport(run.cfg.transport, run.manifest, run.comm.device, run.micro_batches)
        self.fused = FusedRun(run.manifest, run.ident.rank, [r.expert for r in runners], work.routing, work.x0,
                              micro_batches=run.micro_batches, transport=self.transport, device=run.device,
                              dtype=run.dtype, graphs=run.cfg.graphs)
        self.comm = run.comm
        self.capacity_rows_per_peer = self.fused.layers[0].C
        self.expert_rows = round(self.fused.received_rows, 2) if all(self.fused.counted) else None

    def __call__(self, v: int, clock: StepClock | None = None, layer_sync: bool = False):
        self.fused.load(v)
        return self.fused.step(self.comm, clock, layer_sync)

    def start_counting(self) -> None:
        pass

    def overflow_of_step(self) -> float:
        """The largest per-peer count above C in the step just run (a host sync)."""
        return max(0, self.fused.overflow())

    def overflow(self, counted: float, steps: int) -> float:
        """The sum of `overflow_of_step` over the layer-by-layer steps."""
        return counted

    def bytes_to_node(self, run: Rank, sent_bytes: dict[int, float]) -> dict[int, float]:
        """The fused step sends whole [W x C] buffers: 2 M C rows per peer per layer."""
        node_of = {r.rank: r.node for r in run.manifest.ranks}
        row_bytes = run.manifest.model.hidden * torch.tensor([], dtype=run.dtype).element_size()
        out: dict[int, float] = {}
        for step in self.fused.layers:
            for p in range(run.manifest.world_size):
                if p != run.ident.rank:
                    out[node_of[p]] = out.get(node_of[p], 0.0) + 2.0 * step.M * step.C * row_bytes
        return out

    def outputs(self, tables) -> list:
        return [(self.fused.out_tokens, tables.float().cpu().numpy())]
