"""From calibration measurements to a `HardwareProfile` (no torch: the fit is plain arithmetic).

    bf16_tflops, hbm_tbps      the measured 8192^3 GEMM rate and device-to-device copy bandwidth
    expert_curve               the fastest implementation at each token count (the runtime uses the same)
    alltoall_curve             the exchange the runtime's fused step uses by default on this many GPUs
                               (`default_transport`), x = bytes one GPU sends to the others, world = GPUs
    p2p_curve                  one NCCL send/recv pair, x = bytes
    exchange_curves            the fused step's exchange in every transport measured (nccl, symm, symm-ce),
                               x as for alltoall_curve: what the validation charges for the transport a run used
    overlap_curve              the fused step's expert and exchange alone and at once (when measured)
    nvlink_latency_us, _gbps   least-squares line through the p2p curve: intercept and 1 / slope
    transfer_floor_us          the all-to-all curve's smallest time minus the NVLink latency
    kernel_overhead_us         the expert's smallest-token time minus its weight-read time at hbm_tbps
Network numbers cannot be measured on one host: they are copied from the named preset and said so.
"""

from __future__ import annotations

import datetime

import numpy as np

from moeplace.costmodel.profile import CurvePoint, ExpertDims, HardwareProfile, OverlapPoint
from moeplace.placement.schema import ModelSpec

DATASHEET_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "B200": 2250.0}


def _line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line, slope clipped positive."""
    x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    return float(max(intercept, 0.0)), float(max(slope, 1e-12))


def default_transport(world: int, micro_batches: int) -> str:
    """The fused step's transport when none is asked for, by GPU count (measured on 2 and 4 x H200, see
    benchmarks/RESULTS.md): among 2 and among 4 GPUs of one NVLink node the symmetric-memory exchange beats
    NCCL's all-to-all (SM stores for one micro-batch: 166 vs 177 µs at 128 tokens per GPU on 4; the copy
    engines, one stream per peer, for several, which leaves the SMs to the experts: 1,658 vs 1,902 µs at
    4096 on 4). Past 4 GPUs nothing was measured and NCCL stays the default."""
    if world <= 4:
        return "symm" if micro_batches == 1 else "symm-ce"
    return "nccl"


def profile_transport(world: int, curves: dict) -> str:
    """The curve the profile carries: the one the runtime's default transport runs on."""
    return "symm" if default_transport(world, 1).startswith("symm") and curves.get("symm") else "nccl-a2a"


def symm_best(curves: dict) -> list[dict]:
    ce = {p["tokens_per_peer"]: p for p in curves.get("symm-ce", [])}
    return [min(p, ce.get(p["tokens_per_peer"], p), key=lambda q: q["us"]) for p in curves["symm"]]


def build_profile(*, name: str, device: str, memory_gb: float, software: dict[str, str], ceilings: dict,
                  model: ModelSpec, expert: list[dict], curves: dict, world: int, network_from: HardwareProfile,
                  transport: str | None = None) -> HardwareProfile:
    transport = transport or profile_transport(world, curves)
    tb = model.hidden * 2
    exchange = symm_best(curves) if transport == "symm" else curves["nccl-a2a"]
    a2a = [CurvePoint(x=float((world - 1) * p["tokens_per_peer"] * tb), us=p["us"], world=world) for p in exchange]
    p2p = [CurvePoint(x=float(p["bytes"]), us=p["us"]) for p in curves.get("p2p", [])]
    per = {"nccl": curves.get("nccl-a2a", []), "symm": curves.get("symm", []), "symm-ce": curves.get("symm-ce", [])}
    exchange_curves = {name: [CurvePoint(x=float((world - 1) * p["tokens_per_peer"] * tb), us=p["us"], world=world)
                              for p in pts] for name, pts in per.items() if pts}
    overlap = [OverlapPoint(x=float((world - 1) * p["tokens_per_peer"] * tb), world=world, expert_rows=p["expert_rows"],
                            transport=p["transport"], expert_us=p["expert_us"], exchange_us=p["exchange_us"],
                            both_us=p["both_us"]) for p in curves.get("overlap", [])]
    derivation = {
        "bf16_tflops": f"measured: bf16 8192^3 torch.mm, median of 10 ({ceilings['matmul_us']} us)",
        "hbm_tbps": f"measured: 1 GiB device-to-device copy, read + write, median of 10 ({ceilings['copy_us']} us)",
        "expert_curve": "measured: one seeded expert, CUDA graph replays, median of 30, fastest of cuBLAS and "
                        "the small-batch Triton kernel at each size",
        "alltoall_curve": f"measured: the fused step's exchange ({transport}{': SM stores or copy engine, the faster' if transport == 'symm' else ''}) "
                          f"among {world} GPUs of one host, as a CUDA graph, x = bytes one GPU sends to the others, "
                          f"slowest rank, median of 30",
        "exchange_curves": f"measured: the fused step's exchange in each transport among {world} GPUs, as a CUDA "
                           "graph, x = bytes one GPU sends to the others, slowest rank, median of 30",
        "overlap_curve": ("measured: the expert on world x t rows and the exchange of t rows per peer, alone and "
                          "launched together on two streams, as CUDA graphs, slowest rank, median of 30"
                          if overlap else "not measured"),
        "nic_gbps_per_gpu": f"not measured (one host): from preset {network_from.name!r}",
        "network_latency_us": f"not measured (one host): from preset {network_from.name!r}",
    }
    lat, slope = 0.0, 1.0 / max(network_from.nvlink_gbps * 1e3, 1e-9)
    if len(p2p) >= 2:
        lat, slope = _line([p.x for p in p2p], [p.us for p in p2p])
        derivation["nvlink_latency_us"] = "fitted: intercept of the p2p curve (NCCL send/recv pair)"
        derivation["nvlink_gbps"] = "fitted: 1 / slope of the p2p curve (NCCL send/recv pair)"
    floor = max(0.0, min(p.us for p in a2a) - lat) if a2a else 0.0
    derivation["transfer_floor_us"] = "measured: smallest exchange time minus the fitted NVLink latency"
    weights = model.expert_params * 2
    small = min(expert, key=lambda p: p["tokens"])
    overhead = max(0.0, small["us"] - weights / (ceilings["hbm_tbps"] * 1e12) * 1e6)
    derivation["kernel_overhead_us"] = (f"measured: expert at {small['tokens']} tokens minus its weight read "
                                        f"({weights / 1e6:.1f} MB at hbm_tbps)")
    peak = next((v for k, v in DATASHEET_BF16_TFLOPS.items() if k in device), None)
    if peak:
        derivation["peak_bf16_tflops"] = "datasheet dense BF16 of the device named by the driver"
    return HardwareProfile(
        name=name, source="calibrated", device=device,
        measured_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), software=software,
        bf16_tflops=ceilings["bf16_tflops"], hbm_tbps=ceilings["hbm_tbps"], memory_gb=round(memory_gb, 1),
        nvlink_gbps=round(1.0 / slope / 1e3, 1), nvlink_latency_us=round(lat, 2),
        nic_gbps_per_gpu=network_from.nic_gbps_per_gpu, network_latency_us=network_from.network_latency_us,
        expert_dims=ExpertDims(hidden=model.hidden, expert_hidden=model.expert_hidden, activation=model.activation,
                               dtype="bf16"),
        expert_curve=[CurvePoint(x=float(p["tokens"]), us=p["us"]) for p in expert], alltoall_curve=a2a,
        p2p_curve=p2p, peak_bf16_tflops=peak, kernel_overhead_us=round(overhead, 2),
        transfer_floor_us=round(floor, 2), exchange_curves=exchange_curves, overlap_curve=overlap,
        derivation=derivation)
