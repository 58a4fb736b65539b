"""Fabric generator specifications (pydantic v2, frozen): the `topology` table of a cluster file.

They live with the fabrics they describe (`moeplace.topologies.fattree`, `.dragonfly`), below the cluster
spec that holds one (`moeplace.placement.schema.ClusterSpec.topology`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FatTreeSpec(_Frozen):
    """A fat-tree (folded Clos) of `radix`-port switches; `moeplace.topologies.fattree` builds it.

    Leaves hold the nodes' NICs; with `rail_optimized` NIC r of every node of a scalable unit goes to the
    unit's rail-r leaf (NVIDIA DGX SuperPOD), else all NICs of a node share one leaf. Leaves connect to
    their pod's spines, spines to the core. Unset sizes (None) are derived from the radix and the
    oversubscription; the default builds the seed's fabric (232 nodes x 8 HDR NICs, 40-port switches:
    3 levels, units of 20 nodes, 2 units per pod). See docs/topologies.md for the arithmetic.
    """

    kind: Literal["fat-tree"] = "fat-tree"
    radix: int = Field(default=40, ge=4, description="ports per switch")
    levels: Literal[2, 3] | None = Field(default=None, description="switch levels; None: the fewest that fit")
    oversubscription: tuple[Annotated[float, Field(gt=0)], ...] = Field(
        default=(1.0, 1.0), min_length=1, max_length=2,
        description="down:up port ratio (taper) of the leaf and the spine level; 1.0 is non-blocking")
    rail_optimized: bool = Field(default=True, description="NIC r of every node on its unit's rail-r leaf")
    pxn: bool = Field(default=True, description="rail mismatch crosses NVLink first (NCCL PXN), not the spine")
    nodes_per_leaf: int | None = Field(
        default=None, gt=0, description="nodes per leaf, or per rail group of leaves (scalable unit)")
    leaves_per_pod: int | None = Field(
        default=None, gt=0, description="leaves (or rail groups) per pod; 3 levels when the units fill >1 pod")
    link_gbps: float | None = Field(default=None, gt=0, description="speed of every link, Gb/s; None: nic_gbps")
    switch_latency_us: float = Field(default=0.13, ge=0, description="port-to-port latency of one switch")
    link_latency_us: float = Field(default=0.025, ge=0, description="cable latency of one link (5 m at 5 ns/m)")


class DragonflyPlusSpec(_Frozen):
    """A Dragonfly+ (Shpiner et al., 2017): groups of leaves and spines, complete bipartite inside a group,
    global links between the spines of different groups; `moeplace.topologies.dragonfly` builds it.

    Unset sizes follow the paper: radix/2 host ports and radix/2 spine links per leaf, radix/2 leaves
    (rounded down to whole rail groups) and radix/2 spines per group, radix/2 global links per spine, and
    the fewest groups that hold the nodes.
    """

    kind: Literal["dragonfly+"] = "dragonfly+"
    radix: int = Field(default=40, ge=4, description="ports per switch")
    rail_optimized: bool = Field(default=True, description="NIC r of every node on its unit's rail-r leaf")
    pxn: bool = Field(default=True, description="rail mismatch crosses NVLink first (NCCL PXN)")
    nodes_per_leaf: int | None = Field(default=None, gt=0, description="nodes per leaf (or rail group)")
    leaves_per_group: int | None = Field(default=None, gt=0)
    spines_per_group: int | None = Field(default=None, gt=0, description="also each leaf's uplinks")
    global_links_per_spine: int | None = Field(default=None, gt=0)
    num_groups: int | None = Field(default=None, gt=0, description="None: the fewest that hold the nodes")
    routing: Literal["minimal", "valiant"] = Field(default="minimal", description="default routing for link loads")
    link_gbps: float | None = Field(default=None, gt=0, description="speed of every link, Gb/s; None: nic_gbps")
    switch_latency_us: float = Field(default=0.13, ge=0)
    link_latency_us: float = Field(default=0.025, ge=0)


TopologySpec = Annotated[FatTreeSpec | DragonflyPlusSpec, Field(discriminator="kind")]
TOPOLOGY_CLASSES = {"fat-tree": FatTreeSpec, "dragonfly+": DragonflyPlusSpec}
