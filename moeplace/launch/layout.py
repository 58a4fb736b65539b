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


def plan_problems(plan: Plan) -> list[str]:
    """Every inconsistency that would make a launch file wrong, one sentence each; empty when none."""
    out: list[str] = []
    c, m = plan.cluster, plan.model
    W, G, N = plan.num_gpus, c.gpus_per_node, c.num_nodes
    if W != N * G:
        out.append(f"num_gpus is {W}, but the cluster has {N} nodes x {G} GPUs = {N * G}")
    by_rank: dict[int, list] = {}
    for p in plan.placements:
        by_rank.setdefault(p.rank, []).append(p)
    missing = sorted(set(range(W)) - set(by_rank))
    if missing:
        out.append(f"{len(missing)} GPUs have no placement row (first: rank {missing[0]})")
    extra = sorted(r for r in by_rank if r >= W)
    if extra:
        out.append(f"rank {extra[0]} is outside 0..{W - 1}")
    node_host: dict[int, str] = {}
    gpu_rank: dict[tuple[int, int], int] = {}
    seen: dict[tuple[int, int, int], int] = {}
    layers = m.moe_layer_numbers
    for rank in sorted(by_rank):
        rows = by_rank[rank]
        first = rows[0]
        for p in rows[1:]:
            if (p.node, p.host, p.local_gpu) != (first.node, first.host, first.local_gpu):
                out.append(f"rank {rank} is on {first.host} GPU {first.local_gpu} in one placement and on "
                           f"{p.host} GPU {p.local_gpu} in another")
        if first.node >= N:
            out.append(f"rank {rank} is on node {first.node}, the cluster has nodes 0..{N - 1}")
        if first.local_gpu >= G:
            out.append(f"rank {rank} uses local GPU {first.local_gpu}, a node has GPUs 0..{G - 1}")
        bad_host = host_problem(first.host)
        if bad_host:
            out.append(f"rank {rank}: {bad_host}")
        if node_host.setdefault(first.node, first.host) != first.host:
            out.append(f"node {first.node} is {node_host[first.node]} for one rank and {first.host} for rank {rank}")
        key = (first.node, first.local_gpu)
        if key in gpu_rank:
            out.append(f"ranks {gpu_rank[key]} and {rank} both use GPU {first.local_gpu} of {first.host}")
        gpu_rank.setdefault(key, rank)
        experts = [p for p in rows if p.expert is not None]
        if len(experts) != len(rows) and len(rows) > 1:
            out.append(f"rank {rank} has an idle-GPU row beside expert rows")
        if len(experts) > c.experts_per_gpu:
            out.append(f"rank {rank} holds {len(experts)} experts, a GPU has {c.experts_per_gpu} expert slots")
        for p in experts:
            if p.moe_layer is None or not 0 <= p.moe_layer < m.num_moe_layers or p.expert >= m.num_experts:
                out.append(f"rank {rank}: expert {p.expert} of MoE layer {p.moe_layer} is not in the model")
                continue
            if p.layer != layers[p.moe_layer]:
                out.append(f"rank {rank}: MoE layer {p.moe_layer} is model layer {layers[p.moe_layer]}, not {p.layer}")
            item = (p.moe_layer, p.expert, p.replica or 0)
            if item in seen:
                out.append(f"expert {p.expert} of layer {p.layer} replica {p.replica} is on ranks {seen[item]} "
                           f"and {rank}")
            seen.setdefault(item, rank)
    hosts = [node_host.get(n) for n in range(N)]
    uses = Counter(h for h in hosts if h is not None)
    dup = sorted(h for h, n in uses.items() if n > 1)
    if dup:
        out.append(f"host {dup[0]} names {uses[dup[0]]} different nodes")
    placed = {(ml, e) for ml, e, _ in seen}
    unplaced = [(ml, e) for ml in range(m.num_moe_layers) for e in range(m.num_experts) if (ml, e) not in placed]
    if unplaced:
        ml, e = unplaced[0]
        out.append(f"expert {e} of layer {layers[ml]} is on no GPU ({len(unplaced)} experts unplaced)")
    return out


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
