"""Hardware-profile presets, derived from the cluster presets, and loading a calibrated profile file.

A preset profile is the cluster preset's peaks (the seed's numbers or a datasheet) times efficiencies that
were measured, each named in `derivation`:

    GEMM_EFFICIENCY 0.71    fitted to the BRIEF's H200 expert table (40 us at 16 tokens ... 1102 us at 8192)
    KERNEL_OVERHEAD 18 us   as t = 18 us + max(weights / (0.854 HBM), FLOPs / (0.71 peak)): all 8 points
                            within 5%
    HBM_EFFICIENCY  0.854   H200 device-to-device copy: 4.1 of 4.8 TB/s (BRIEF)

`seed` keeps the seed's own world where the seed gives a number: 400 TFLOP/s, 1.8 TB/s, HDR 200 Gb/s,
< 1 us / < 3 us, its 80% bandwidth target on every link, and no software floor per transfer. `h100-sxm`
and `h200` are datasheets with measured efficiencies and the NCCL floors of ANCHORS.md and the BRIEF; `h200`
also carries the BRIEF's measured expert and all-to-all curves.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from moeplace.costmodel.profile import CurvePoint, ExpertDims, HardwareProfile
from moeplace.errors import InputError
from moeplace.fileio import load_mapping
from moeplace.placement.presets import CLUSTER_PRESETS
from moeplace.placement.schema import ClusterSpec

GEMM_EFFICIENCY = 0.71
HBM_EFFICIENCY = 0.854
KERNEL_OVERHEAD_US = 18.0
NIC_EFFICIENCY = 0.95          # HDR: 23.5-24 of 25 GB/s achieved (ANCHORS)
SEED_BW_TARGET = 0.8           # the seed's "target bandwidth utilization"

PROFILE_PRESETS: dict[str, HardwareProfile] = {}

BRIEF_H200_EXPERT_US = ((16, 40), (128, 41), (256, 50), (512, 80), (1024, 143), (2048, 277), (4096, 532),
                        (8192, 1102))
BRIEF_H200_ALLTOALL4_US = ((1, 66), (128, 65), (512, 125), (2048, 343), (8192, 1148))


def register_profile(key: str, profile: HardwareProfile) -> HardwareProfile:
    if key in PROFILE_PRESETS:
        raise ValueError(f"hardware profile preset {key!r} is already registered")
    PROFILE_PRESETS[key] = profile
    return profile


def _nic_gbytes(cluster: ClusterSpec) -> float:
    return cluster.nic_gbytes_per_gpu


def _seed_profile() -> HardwareProfile:
    c = CLUSTER_PRESETS["seed"]
    g = c.gpu
    return HardwareProfile(
        name="seed", source="preset", device=g.name, memory_gb=g.memory_gb,
        bf16_tflops=round(g.bf16_tflops * GEMM_EFFICIENCY, 3), peak_bf16_tflops=g.bf16_tflops,
        hbm_tbps=round(g.hbm_tbps * SEED_BW_TARGET, 4), nvlink_gbps=round(g.nvlink_gbps * SEED_BW_TARGET, 3),
        nvlink_latency_us=c.latency_intra_node_us, nic_gbps_per_gpu=round(_nic_gbytes(c) * SEED_BW_TARGET, 4),
        network_latency_us=c.latency_inter_node_us, kernel_overhead_us=KERNEL_OVERHEAD_US, transfer_floor_us=0.0,
        derivation={
            "bf16_tflops": f"seed 400 TFLOP/s x {GEMM_EFFICIENCY} GEMM efficiency (fit to measured H200 expert-kernel times)",
            "hbm_tbps": f"seed 1.8 TB/s x the seed's {SEED_BW_TARGET:.0%} bandwidth target",
            "nvlink_gbps": f"450 GB/s per direction x {SEED_BW_TARGET:.0%}",
            "nic_gbps_per_gpu": f"HDR 200 Gb/s, one NIC per GPU, x {SEED_BW_TARGET:.0%}",
            "latency": "the seed's < 1 us in a node, < 3 us across nodes; no software floor (the seed's world)",
            "kernel_overhead_us": f"{KERNEL_OVERHEAD_US:g} us fitted to measured H200 expert-kernel times",
        })


def _datasheet_profile(key: str, *, nvlink_eff: float, nvlink_note: str, floor_us: float, floor_note: str,
                       curves: bool) -> HardwareProfile:
    c = CLUSTER_PRESETS[key]
    g = c.gpu
    extra = {}
    if curves:
        extra = {"expert_dims": ExpertDims(hidden=7168, expert_hidden=2048, activation="swiglu", dtype="bf16"),
                     "expert_curve": [CurvePoint(x=n, us=us) for n, us in BRIEF_H200_EXPERT_US],
                     "alltoall_curve": [CurvePoint(x=t * 4 * 14336, us=us, world=4)
                                        for t, us in BRIEF_H200_ALLTOALL4_US]}
    return HardwareProfile(
        name=key, source="preset", device=g.name, memory_gb=g.memory_gb,
        bf16_tflops=round(g.bf16_tflops * GEMM_EFFICIENCY, 3), peak_bf16_tflops=g.bf16_tflops,
        hbm_tbps=round(g.hbm_tbps * HBM_EFFICIENCY, 4), nvlink_gbps=round(g.nvlink_gbps * nvlink_eff, 3),
        nvlink_latency_us=c.latency_intra_node_us, nic_gbps_per_gpu=round(_nic_gbytes(c) * NIC_EFFICIENCY, 4),
        network_latency_us=c.latency_inter_node_us, kernel_overhead_us=KERNEL_OVERHEAD_US,
        transfer_floor_us=floor_us,
        derivation={
            "bf16_tflops": f"datasheet {g.bf16_tflops:g} TFLOP/s x {GEMM_EFFICIENCY} GEMM efficiency "
                           "(fit to measured H200 expert-kernel times)",
            "hbm_tbps": f"datasheet {g.hbm_tbps:g} TB/s x {HBM_EFFICIENCY} (measured H200 copy: 4.1 of 4.8 TB/s)",
            "nvlink_gbps": nvlink_note,
            "nic_gbps_per_gpu": f"{c.nic_gbps:g} Gb/s per GPU x {NIC_EFFICIENCY} (measured HDR: 23.5-24 of 25 GB/s)",
            "latency": f"{c.latency_intra_node_us:g} us in a node, {c.latency_inter_node_us:g} us across nodes "
                       "(cluster preset)",
            "transfer_floor_us": floor_note,
            "kernel_overhead_us": f"{KERNEL_OVERHEAD_US:g} us fitted to measured H200 expert-kernel times",
            **({"curves": "expert and 4-GPU all-to-all curves: measured on H200"} if curves else {}),
        }, **extra)


register_profile("seed", _seed_profile())
register_profile("h100-sxm", _datasheet_profile(
    "h100-sxm", nvlink_eff=346 / 450, nvlink_note="measured NCCL all-to-all 8 x H100 346 GB/s of 450",
    floor_us=24.0, floor_note="measured NCCL all-to-all floor on 8 x H100, 24 us", curves=False))
register_profile("h200", _datasheet_profile(
    "h200", nvlink_eff=315 / 450, nvlink_note="measured H200 point-to-point 300-330 GB/s of 450",
    floor_us=31.0, floor_note="measured NCCL all-to-all floor between 2 H200, 31 us", curves=True))


def load_profile(ref: str | None, default: str = "seed") -> HardwareProfile:
    """A profile preset name or a `moeplace.hwprofile` JSON file (written by `moeplace calibrate`)."""
    ref = ref or default
    if ref in PROFILE_PRESETS:
        return PROFILE_PRESETS[ref]
    path = Path(ref)
    if path.suffix.lower() != ".json" and not path.exists():
        raise InputError(f"unknown hardware profile {ref!r} (known: {', '.join(PROFILE_PRESETS)}; or a .json file "
                         "written by `moeplace calibrate`)", field="--profile")
    data = load_mapping(path)
    if data.get("format") != "moeplace.hwprofile":
        raise InputError(f"not a moeplace hardware profile (format {data.get('format')!r}, expected "
                         "'moeplace.hwprofile')", source=str(path), field="format")
    try:
        return HardwareProfile.model_validate(data)
    except ValidationError as exc:
        raise InputError.from_validation(exc, str(path)) from None


def default_profile_for(cluster_name: str) -> str:
    """The profile preset that matches a cluster preset name (seed for anything unknown)."""
    return cluster_name if cluster_name in PROFILE_PRESETS else "seed"
