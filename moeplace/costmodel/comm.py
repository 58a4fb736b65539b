"""Communication time: per-transfer latency plus bytes over bandwidth, per tier, with NIC sharing in a node.

One transfer step (a dispatch, a combine, a send to the next stage) of b tokens at MoE layer l takes

    t = floor + latency + b x max( max_n max(egress, ingress)[n] / node NIC bandwidth,
                                   max_n nvlink[n] / (GPUs per node x NVLink bandwidth) )

with latency the network's if any byte of the step leaves a node, else NVLink's; `floor` is the software
time of one step (`transfer_floor_us`). A node's NICs are shared by all its GPUs: bandwidth is the node's
total (NICs reach every GPU over NVLink, as NCCL's PXN does), so a node whose GPUs all send at once waits
for its NICs. Where the profile has a measured NVLink curve (all-to-all for ep, point-to-point for chain),
a step that stays inside nodes takes the curve's time at its bytes per GPU instead.

`tick_us` is the steady-state view of a pipeline: every layer moves b tokens at once, so each node's NICs
carry the sum over layers, and each link its routed share (`moeplace.costmodel.links`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moeplace.costmodel.profile import CurvePoint, HardwareProfile
from moeplace.costmodel.transfers import Transfers
from moeplace.placement.flows import get_flow
from moeplace.placement.problem import Problem


@dataclass(frozen=True)
class Rates:
    """Bandwidths in bytes per microsecond and latencies in microseconds, from a profile and a cluster."""

    node_nic_B_per_us: float
    nvlink_B_per_us: float
    gpus_per_node: int
    network_latency_us: float
    nvlink_latency_us: float
    floor_us: float
    nvlink_curve: tuple[CurvePoint, ...] = ()

    @classmethod
    def of(cls, profile: HardwareProfile, problem: Problem) -> Rates:
        curve = {"alltoall": profile.alltoall_curve, "p2p": profile.p2p_curve}[get_flow(problem.flow).collective]
        return cls(node_nic_B_per_us=profile.nic_gbps_per_gpu * 1e3 * problem.gpus_per_node,
                   nvlink_B_per_us=profile.nvlink_gbps * 1e3, gpus_per_node=problem.gpus_per_node,
                   network_latency_us=profile.network_latency_us, nvlink_latency_us=profile.nvlink_latency_us,
                   floor_us=profile.transfer_floor_us, nvlink_curve=tuple(sorted(curve, key=lambda p: p.x)))


def curve_us(curve: tuple[CurvePoint, ...], x: np.ndarray) -> np.ndarray:
    """Measured time at x: log-log interpolation, flat below the first point, linear in x beyond the last."""
    xs = np.array([max(p.x, 1.0) for p in curve])
    ys = np.array([p.us for p in curve])
    x = np.maximum(np.asarray(x, dtype=np.float64), 1.0)
    inner = np.exp(np.interp(np.log(np.clip(x, xs[0], xs[-1])), np.log(xs), np.log(ys)))
    return np.where(x > xs[-1], ys[-1] * x / xs[-1], inner)


def per_token_us(tr: Transfers, rates: Rates) -> tuple[np.ndarray, np.ndarray]:
    """(network, NVLink) microseconds per token of each step and layer, float [S, L], busiest node."""
    net = np.maximum(tr.egress_SLN, tr.ingress_SLN).max(axis=2) / rates.node_nic_B_per_us
    nvl = tr.nvlink_SLN.max(axis=2) / (rates.gpus_per_node * rates.nvlink_B_per_us)
    return net, nvl


def step_us(tr: Transfers, rates: Rates, tokens: float) -> np.ndarray:
    """float [S, L]: time of each transfer step of each layer for `tokens` tokens (0 where nothing moves)."""
    net, nvl = per_token_us(tr, rates)
    has_net = tr.egress_SLN.sum(axis=2) > 0
    has_nvl = tr.nvlink_SLN.sum(axis=2) > 0
    latency = np.where(has_net, rates.network_latency_us, np.where(has_nvl, rates.nvlink_latency_us, 0.0))
    t = np.where(has_net | has_nvl, rates.floor_us + latency + tokens * np.maximum(net, nvl), 0.0)
    if rates.nvlink_curve:
        per_gpu = tokens * tr.nvlink_SLN.max(axis=2) / rates.gpus_per_node
        t = np.where(has_nvl & ~has_net, curve_us(rates.nvlink_curve, per_gpu), t)
    return t


def tick_us(tr: Transfers, rates: Rates, tokens: float) -> tuple[float, float]:
    """(network, NVLink) time when every layer moves `tokens` tokens at once: the busiest node's sums."""
    eg = tr.egress_SLN.sum(axis=(0, 1))
    ing = tr.ingress_SLN.sum(axis=(0, 1))
    nvl = tr.nvlink_SLN.sum(axis=(0, 1))
    net_t = tokens * float(np.maximum(eg, ing).max(initial=0.0)) / rates.node_nic_B_per_us
    nvl_t = tokens * float(nvl.max(initial=0.0)) / (rates.gpus_per_node * rates.nvlink_B_per_us)
    return net_t, nvl_t


def nic_utilization_N(tr: Transfers, rates: Rates, tokens_per_us: float) -> np.ndarray:
    """float [N]: each node's mean NIC load (the larger direction) over its bandwidth at a token rate."""
    eg = tr.egress_SLN.sum(axis=(0, 1))
    ing = tr.ingress_SLN.sum(axis=(0, 1))
    return tokens_per_us * np.maximum(eg, ing) / rates.node_nic_B_per_us


def nvlink_utilization_N(tr: Transfers, rates: Rates, tokens_per_us: float) -> np.ndarray:
    """float [N]: each node's mean NVLink load over its GPUs' NVLink bandwidth at a token rate."""
    return tokens_per_us * tr.nvlink_SLN.sum(axis=(0, 1)) / (rates.gpus_per_node * rates.nvlink_B_per_us)
