"""Rank and host files: the plan's rank -> (host, GPU, experts) map in the formats launchers read.

    rankfile.tsv        moeplace's own: one line per rank, tab-separated, '#' header; the wrapper reads it
    hostfile            SLURM_HOSTFILE for `srun --distribution=arbitrary`: line r is the host of rank r
    hostfile.deepspeed  DeepSpeed / Horovod: `host slots=G`, one line per node in node order
    hostfile.mpich      MPICH / Hydra: `host:G`
    rankfile.openmpi    Open MPI `--rankfile`: `rank r=host slot=CORES` (cores, not GPUs: Open MPI binds CPUs)

A GPU with several experts lists them comma-separated, aligned across the layer/expert/replica columns; an
idle GPU has '-' there. Writers are pure functions layout -> text.
"""

from __future__ import annotations

from moeplace.launch.layout import Layout
from moeplace.launch.options import EmitOptions

RANKFILE_COLUMNS = ("rank", "host", "local_gpu", "node", "layer", "expert", "replica")


def _join(values: list[int]) -> str:
    return ",".join(str(v) for v in values) if values else "-"


def rankfile_tsv(layout: Layout, plan_sha256: str) -> str:
    lines = [f"# moeplace rank file: plan sha256 {plan_sha256}; layer is the model's 1-based layer number",
             "# " + "\t".join(RANKFILE_COLUMNS)]
    for r in layout.rows:
        lines.append("\t".join([str(r.rank), r.host, str(r.local_gpu), str(r.node),
                                _join([s.layer for s in r.slots]), _join([s.expert for s in r.slots]),
                                _join([s.replica for s in r.slots])]))
    return "\n".join(lines) + "\n"


def slurm_hostfile(layout: Layout) -> str:
    return "".join(f"{r.host}\n" for r in layout.rows)


def deepspeed_hostfile(layout: Layout) -> str:
    return "".join(f"{h} slots={layout.gpus_per_node}\n" for h in layout.hosts)


def mpich_hostfile(layout: Layout) -> str:
    return "".join(f"{h}:{layout.gpus_per_node}\n" for h in layout.hosts)


def openmpi_rankfile(layout: Layout, options: EmitOptions) -> str:
    c = options.cpus_per_rank
    lines = []
    for r in layout.rows:
        lo = r.local_gpu * c
        slot = str(lo) if c == 1 else f"{lo}-{lo + c - 1}"
        lines.append(f"rank {r.rank}={r.host} slot={slot}")
    return "\n".join(lines) + "\n"
