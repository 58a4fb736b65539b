"""Hardware profiles: the numbers the cost model runs on, from a preset or measured by `moeplace calibrate`.

A profile is a JSON file (`format: moeplace.hwprofile`). Curves are measured points, interpolated
piecewise-linearly in log-log space by the cost model and extrapolated by the roofline beyond them.

    expert_curve     one expert MLP forward at `expert_dims`, tokens -> microseconds
    alltoall_curve   NCCL all_to_all_single among `world` GPUs of one node, bytes per rank -> microseconds
    p2p_curve        one NVLink send/recv pair, bytes -> microseconds

The last four fields were added for the cost model (all optional, so calibrated files stay valid):
`peak_bf16_tflops` (the MFU denominator), `kernel_overhead_us` and `transfer_floor_us` (the fixed parts of
the roofline and of a transfer, fitted from measurements) and `derivation` (where each number comes from).
`exchange_curves` and `overlap_curve` (added later, optional too) hold the runtime's fused-step exchange in
each transport, and its expert and exchange measured alone and launched together on two streams, from which
the validation derives how much running at once slows them (`moeplace.costmodel.fusedstep.overlap_rate`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExpertDims(_Frozen):
    hidden: int = Field(gt=0)
    expert_hidden: int = Field(gt=0)
    activation: Literal["swiglu", "mlp"] = "swiglu"
    dtype: Literal["bf16", "fp16", "fp32", "fp8"] = "bf16"


class CurvePoint(_Frozen):
    x: float = Field(ge=0, description="tokens (expert curve) or bytes (communication curves)")
    us: float = Field(gt=0, description="median microseconds")
    world: int | None = Field(default=None, description="GPUs taking part (all-to-all curves)")


class OverlapPoint(_Frozen):
    """The fused step's expert and exchange at one capacity, alone and at once (two streams, one graph)."""

    x: float = Field(ge=0, description="bytes one GPU sends to the others per exchange, (world - 1) x C x token bytes")
    world: int = Field(ge=2, description="GPUs taking part")
    expert_rows: int = Field(gt=0, description="rows of the expert call, world x C")
    transport: str = Field(description="the exchange measured: nccl (all-to-all) or symm-ce (copy engine)")
    expert_us: float = Field(gt=0, description="the expert alone, median")
    exchange_us: float = Field(gt=0, description="the exchange alone, median")
    both_us: float = Field(gt=0, description="both launched together on two streams, median of the slowest rank")


class HardwareProfile(_Frozen):
    format: Literal["moeplace.hwprofile"] = "moeplace.hwprofile"
    format_version: Literal[1] = 1
    name: str
    source: Literal["preset", "calibrated"]
    device: str = Field(description="GPU name as the driver reports it, or the preset's name")
    measured_at: str | None = None
    software: dict[str, str] = Field(default_factory=dict, description="torch, CUDA, NCCL versions")
    bf16_tflops: float = Field(gt=0, description="achievable dense BF16 peak used by the roofline")
    hbm_tbps: float = Field(gt=0, description="achievable HBM bandwidth")
    memory_gb: float = Field(gt=0)
    nvlink_gbps: float = Field(gt=0, description="achievable NVLink bandwidth per GPU per direction, GB/s")
    nvlink_latency_us: float = Field(ge=0)
    nic_gbps_per_gpu: float = Field(gt=0, description="achievable network bandwidth per GPU, GB/s")
    network_latency_us: float = Field(ge=0)
    expert_dims: ExpertDims | None = None
    expert_curve: list[CurvePoint] = Field(default_factory=list)
    alltoall_curve: list[CurvePoint] = Field(default_factory=list)
    p2p_curve: list[CurvePoint] = Field(default_factory=list)
    peak_bf16_tflops: float | None = Field(default=None, gt=0,
                                           description="nominal dense BF16 peak, the denominator of MFU "
                                                       "(None: the cluster's GPU spec)")
    kernel_overhead_us: float = Field(default=0.0, ge=0,
                                      description="fixed time of one fused block (an expert MLP, an attention, "
                                                  "a dense MLP) beyond its roofline: launches, tails")
    transfer_floor_us: float = Field(default=0.0, ge=0,
                                     description="software time of one transfer step (dispatch, combine, send) "
                                                 "beyond the link latency: launch and synchronisation")
    exchange_curves: dict[str, list[CurvePoint]] = Field(
        default_factory=dict, description="the fused step's exchange by transport (nccl, symm, symm-ce), x = bytes "
                                          "one GPU sends to the others (empty: only alltoall_curve)")
    overlap_curve: list[OverlapPoint] = Field(default_factory=list,
                                              description="the fused step's expert and exchange alone and at once, "
                                                          "by exchange bytes (empty: not measured)")
    derivation: dict[str, str] = Field(default_factory=dict,
                                       description="where each number comes from, by field name")
