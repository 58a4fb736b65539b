"""Run the comparison: every world x design x scale at the report's workload points, as plain rows.

The result (`Comparison`) is data only: the inputs, one row per prediction (a flat dict of numbers and
short strings), the placements' solver records, the plot data, and the seed's claims. `report.md`,
`report.html`, `comparison.json` and the terminal summary are all rendered from it.

Workload points (all stated in the report):
    decode capacity   decode at `context`, each deployment at the largest batch that fits its memory
    prefill capacity  prompts of `context` tokens, each deployment at the largest batch that fits
    decode batch 1    the latency floor
    decode sweep      `decode_batches` at `context`
    prefill           `prefill_batch` prompts of each length in `prompts`
A batch is the number of sequences in flight on the deployment: at `equal-gpus` spread over the
replicas that fill the cluster, at `one-instance` all on one instance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from moeplace.costmodel.deployment import Options, Workload
from moeplace.costmodel.model import Prediction, Prepared, predict, prepare
from moeplace.errors import InputError
from moeplace.placement.builder import check_capacity, load_stats
from moeplace.placement.presets import load_model
from moeplace.report.scenarios import (
    SCALES,
    Design,
    Placer,
    World,
    designs,
    resolve_worlds,
)
from moeplace.topologies.base import TIER_KEYS

SWEEP_KEYS = ("batch", "experts-per-gpu", "context", "prompt")


@dataclass(frozen=True)
class CompareConfig:
    worlds: tuple[str, ...] = ("seed", "h100-sxm")
    cluster_ref: str | None = None
    model_ref: str | None = None
    stats_ref: str | None = None
    plan_path: str | None = None
    seed: int = 0
    solver: str | None = None        # None: solve's default solver
    work_limit: float | None = None  # None: the solver's own budget, as `moeplace solve`
    experts_per_gpu: tuple[int, ...] = (1, 4, 8)
    attentions: tuple[str, ...] = ("dp", "tp")
    context: int = 2048
    batch: int = 512
    decode_batches: tuple[int, ...] = (1, 8, 64, 512)
    prefill_batch: int = 64
    prompts: tuple[int, ...] = (512, 1024, 2048, 4096)
    options: Options = field(default_factory=Options)
    sweeps: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["options"] = self.options.as_dict()
        d["sweeps"] = [{"key": k, "values": list(v)} for k, v in self.sweeps]
        return d


@dataclass(frozen=True, eq=False)
class Comparison:
    config: CompareConfig
    model: dict
    stats: dict
    worlds: list[dict]
    designs: list[dict]
    placements: dict[str, dict]
    rows: list[dict]
    sweeps: list[dict]
    plots: dict
    claims: list[dict]


def parse_sweep(raw: str) -> tuple[str, tuple[int, ...]]:
    key, sep, values = raw.partition("=")
    key = key.strip().replace("_", "-")
    if not sep or key not in SWEEP_KEYS:
        raise InputError(f"expected KEY=V1,V2,... with KEY one of {', '.join(SWEEP_KEYS)}, got {raw!r}",
                         field="--sweep")
    try:
        vals = tuple(int(v) for v in values.split(",") if v.strip())
    except ValueError:
        raise InputError(f"values must be integers, got {values!r}", field="--sweep") from None
    if not vals or min(vals) < 1:
        raise InputError(f"values must be positive integers, got {values!r}", field="--sweep")
    return key, vals


def row_of(p: Prediction, world: World, design: Design, scale: str, point: str) -> dict:
    w = p.workload
    mem = p.memory.breakdown_gb()
    tiers = p.transfers.bytes_by_tier
    return {
        "point": point, "world": world.key, "design": design.key, "label": p.deployment, "scale": scale,
        "phase": w.phase, "batch": w.batch, "seq_len": w.seq_len, "gpus": p.gpus,
        "gpus_per_instance": p.gpus_per_instance, "instances": p.instances, "active_instances": p.active_instances,
        "micro_batches": p.micro_batches, "tokens_per_s": p.tokens_per_s,
        "tokens_per_s_per_gpu": p.tokens_per_s_per_gpu,
        "latency_ms": p.latency_us / 1e3, "pass_ms": p.timing.pass_us / 1e3, "tick_ms": p.timing.tick_us / 1e3,
        "mfu": p.mfu, "memory_gb": mem["total"], "memory_weights_gb": mem["weights"], "memory_kv_gb": mem["kv_cache"],
        "memory_buffers_gb": mem["buffers"], "memory_limit_gb": p.memory.limit_gb, "fits": p.memory.fits,
        "max_batch": p.max_batch, "cross_node_bytes_per_token": p.cross_node_bytes_per_token,
        "flow_cross_node_bytes_per_token": p.flow_cross_node_bytes,
        "bytes_per_token_by_tier": {TIER_KEYS[t]: float(tiers[t]) for t in range(len(TIER_KEYS))},
        "peak_nic_util": p.peak_nic_util, "peak_link_util": p.peak_link_util, "peak_nvlink_util": p.peak_nvlink_util,
        "bottleneck": p.bottleneck, "busy_fraction": p.busy_fraction, "expert_balance": p.timing.expert_balance,
        "comm_share_of_pass": p.comm_share_of_pass, "terms_ms": {k: v / 1e3 for k, v in p.timing.terms.items()},
    }


class _Runner:
    def __init__(self, cfg: CompareConfig, progress: Callable[[str], None] | None) -> None:
        self.cfg = cfg
        self.progress = progress or (lambda _msg: None)
        self.model = load_model(cfg.model_ref)
        self.worlds = resolve_worlds(cfg.worlds, cfg.cluster_ref)
        if 1 in cfg.experts_per_gpu:  # the expert-per-GPU design, checked before any statistics are built
            for world in self.worlds:
                check_capacity(self.model, world.cluster.model_copy(update={"experts_per_gpu": 1}),
                               hint="the expert-per-GPU design needs {nodes} nodes: leave 1 out of --experts-per-gpu")
        self.stats = load_stats(cfg.stats_ref, self.model, seed=cfg.seed)
        self.placer = Placer(self.model, self.stats, solver=cfg.solver, work_limit=cfg.work_limit, seed=cfg.seed,
                             plan_path=cfg.plan_path)
        self._prep: dict[tuple[str, str, str], Prepared] = {}

    def prepared(self, world: World, design: Design, scale: str, phase: str) -> Prepared:
        key = (world.key, design.key, phase)
        if key not in self._prep:
            self.progress(f"{world.key}: {design.label(self.model)}, {phase}")
            dep = self.placer.deployment(world, design, scale)
            self._prep[key] = prepare(world.profile, dep, self.cfg.options, phase,
                                      ep_traffic=self.placer.traffic("ep"))
        prep = self._prep[key]
        dep = self.placer.deployment(world, design, scale)
        return dataclasses.replace(prep, deployment=dep)

    def predict(self, world: World, design: Design, scale: str, w: Workload) -> Prediction:
        return predict(self.prepared(world, design, scale, w.phase), w)

    def capacity(self, world: World, design: Design, scale: str, phase: str = "decode") -> Prediction:
        """The prediction at the largest batch that fits memory at the report's context (or prompt) length;
        at batch 1 when nothing fits (the row then says it does not fit)."""
        probe = self.predict(world, design, scale, Workload(phase, 1, self.cfg.context))
        if probe.max_batch < 1:
            return probe
        return self.predict(world, design, scale, Workload(phase, probe.max_batch, self.cfg.context))


def run_comparison(cfg: CompareConfig, progress: Callable[[str], None] | None = None) -> Comparison:
    from moeplace.report.claims import evaluate_claims
    from moeplace.report.plotdata import plot_data

    r = _Runner(cfg, progress)
    ds = designs(cfg.experts_per_gpu, cfg.attentions, r.model)
    rows: list[dict] = []
    for world in r.worlds:
        for scale in SCALES:
            for d in ds:
                rows.append(row_of(r.capacity(world, d, scale), world, d, scale, "decode-capacity"))
                rows.append(row_of(r.capacity(world, d, scale, "prefill"), world, d, scale, "prefill-capacity"))
                for b in sorted(set(cfg.decode_batches) | {1}):
                    rows.append(row_of(r.predict(world, d, scale, Workload("decode", b, cfg.context)), world, d,
                                       scale, "decode-batch"))
                for s in cfg.prompts:
                    rows.append(row_of(r.predict(world, d, scale, Workload("prefill", cfg.prefill_batch, s)), world, d,
                                       scale, "prefill"))
    sweeps = [run_sweep(r, key, values) for key, values in cfg.sweeps]
    placements = {str(e): rec for e, (_, rec) in sorted(r.placer._placements.items())}
    claims = evaluate_claims(r, ds)
    return Comparison(config=cfg, model=r.model.model_dump(mode="json"), stats=dict(r.stats.provenance),
                      worlds=[{"key": w.key, "source": w.source, "cluster": w.cluster.name,
                               "fabric": r.placer.problem(w, ds[0]).fabric.description,
                               "profile": w.profile.model_dump(mode="json")} for w in r.worlds],
                      designs=[{"key": d.key, "label": d.label(r.model), "experts_per_gpu": d.experts_per_gpu,
                                "attention": d.attention} for d in ds],
                      placements=placements, rows=rows, sweeps=sweeps, plots=plot_data(r, ds, rows), claims=claims)


def run_sweep(r: _Runner, key: str, values: tuple[int, ...]) -> dict:
    cfg = r.cfg
    rows = []
    for v in values:
        r.progress(f"sweep {key}={v}")
        for world in r.worlds:
            if key == "experts-per-gpu":
                ds, w = designs((v,), cfg.attentions, r.model), Workload("decode", cfg.batch, cfg.context)
            else:
                ds = designs(cfg.experts_per_gpu, cfg.attentions, r.model)
                w = {"batch": Workload("decode", v, cfg.context), "context": Workload("decode", cfg.batch, v),
                     "prompt": Workload("prefill", cfg.prefill_batch, v)}[key]
            for d in ds:
                row = row_of(r.predict(world, d, "equal-gpus", w), world, d, "equal-gpus", f"sweep-{key}")
                row["sweep_value"] = v
                rows.append(row)
    return {"key": key, "values": list(values), "rows": rows}
