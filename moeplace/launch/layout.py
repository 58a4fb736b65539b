"""The rank layout every launch artifact is written from: one row per rank, checked once.

A plan lists placements (one per expert, one per idle GPU); the launch files need the transpose: per rank
its node, host, local GPU and experts. `plan_problems` finds everything that would make a launch file wrong
(a GPU used twice, an expert missing, a host that changes between a node's GPUs) so that `emit` refuses a
broken plan and `check` reports it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from moeplace.errors import InputError
from moeplace.launch.safe import HOST_RE, host_problem  # noqa: F401 (HOST_RE: public name)
from moeplace.placement.consistency import plan_problems  # noqa: F401 (public name, used by check)
from moeplace.placement.plan import Plan
from moeplace.topologies.base import default_hosts

ALLOW_PLACEHOLDERS = "MOEPLACE_ALLOW_PLACEHOLDER_HOSTS"


@dataclass(frozen=True, order=True)
class Slot:
    """One expert a rank runs: the model's 1-based `layer`, the 0-based `moe_layer`, `expert`, `replica`."""

    layer: int
    moe_layer: int
    expert: int
    replica: int


@dataclass(frozen=True)
class RankRow:
    rank: int
    node: int
    host: str
    local_gpu: int
    slots: tuple[Slot, ...]


@dataclass(frozen=True, eq=False)
class Layout:
    """Ranks 0..world_size-1 in order (rows[r].rank == r) and the node order of the hosts."""

    plan: Plan
    rows: tuple[RankRow, ...]
    hosts: tuple[str, ...]

    @property
    def world_size(self) -> int:
        return len(self.rows)

    @property
    def num_nodes(self) -> int:
        return len(self.hosts)

    @property
    def gpus_per_node(self) -> int:
        return self.plan.cluster.gpus_per_node

    @property
    def master_addr(self) -> str:
        return self.rows[0].host

    def node_ranks(self, node: int) -> list[RankRow]:
        return [r for r in self.rows if r.node == node]

    @property
    def placeholder_hosts(self) -> bool:
        """True when the hosts are the generated node001, node002, ...: the plan was given no real names (no
        --hosts, no cluster `hosts`, no topology file naming hosts), so no cluster is known to have them."""
        plan = self.plan
        named = plan.cluster.hosts is not None or plan.topology.params.get("source") not in (None, "generator")
        return not named and self.hosts == default_hosts(len(self.hosts))

    @property
    def is_node_major(self) -> bool:
        """rank = node x gpus_per_node + local_gpu (the order torchrun and the engines number GPUs in)."""
        return all(r.rank == r.node * self.gpus_per_node + r.local_gpu for r in self.rows)


def plan_layout(plan: Plan, *, source: str = "plan.json") -> Layout:
    """The layout of a consistent plan; the first inconsistency is an `InputError`."""
    problems = plan_problems(plan)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InputError(problems[0] + more, source=source, field="placements")
    by_rank: dict[int, list] = {}
    for p in plan.placements:
        by_rank.setdefault(p.rank, []).append(p)
    rows = []
    for rank in range(plan.num_gpus):
        ps = by_rank[rank]
        slots = sorted(Slot(p.layer, p.moe_layer, p.expert, p.replica or 0) for p in ps if p.expert is not None)
        rows.append(RankRow(rank=rank, node=ps[0].node, host=ps[0].host, local_gpu=ps[0].local_gpu,
                            slots=tuple(slots)))
    hosts = [""] * plan.cluster.num_nodes
    for r in rows:
        hosts[r.node] = r.host
    return Layout(plan=plan, rows=tuple(rows), hosts=tuple(hosts))


def with_hosts(plan: Plan, hostlist: str) -> Plan:
    """The plan with its nodes renamed, node i -> the i-th host of a Slurm hostlist (positions unchanged)."""
    from moeplace.topologies.hostlist import expand_hostlist

    hosts = expand_hostlist(hostlist)
    N = plan.cluster.num_nodes
    if len(hosts) != N:
        raise InputError(f"{hostlist!r} names {len(hosts)} hosts, the plan has {N} nodes", field="--hosts")
    if len(set(hosts)) != N:
        dup = next(h for h, n in Counter(hosts).items() if n > 1)
        raise InputError(f"{hostlist!r} names host {dup} twice", field="--hosts")
    bad = next((why for why in map(host_problem, hosts) if why), None)
    if bad is not None:
        raise InputError(bad, field="--hosts")
    placements = [p.model_copy(update={"host": hosts[p.node]}) for p in plan.placements]
    cluster = plan.cluster.model_copy(update={"hosts": hostlist})
    return plan.model_copy(update={"placements": placements, "cluster": cluster})
