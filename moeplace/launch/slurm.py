"""The Slurm batch script and the per-rank wrapper it starts.

`job.sbatch` asks for the plan's nodes by name (a plan is only valid on the hosts it was made for), points
`SLURM_HOSTFILE` at `hostfile` (line r = host of rank r) and starts `srun --distribution=arbitrary`, so that
rank r runs on the plan's host of rank r. `moeplace-rank.sh` then reads its row of `rankfile.tsv`, refuses
to run anywhere else, pins its GPU with `CUDA_VISIBLE_DEVICES` from the plan (Slurm's own GPU binding numbers
GPUs differently from site to site) and execs the runtime worker. The wrapper also works under `mpirun`
(OMPI_COMM_WORLD_RANK) and Hydra (PMI_RANK).
"""

from __future__ import annotations

from moeplace.launch.layout import ALLOW_PLACEHOLDERS, Layout
from moeplace.launch.options import EmitOptions
from moeplace.launch.safe import comment_text
from moeplace.topologies.hostlist import compress_hostlist

WRAPPER = "moeplace-rank.sh"
WORKER = "-m moeplace.runtime.worker"


def describe(layout: Layout) -> str:
    """The plan in a few words for a `#` line: the model's name with control characters escaped."""
    return f"{comment_text(layout.plan.model.name)} on {layout.num_nodes} nodes x {layout.gpus_per_node} GPUs"


def sbatch_script(layout: Layout, plan_sha256: str, options: EmitOptions) -> str:
    W, N, G = layout.world_size, layout.num_nodes, layout.gpus_per_node
    head = [
        "#!/usr/bin/env bash",
        f"#SBATCH --job-name={options.slurm_job_name(layout.plan.model.name)}",
        f"#SBATCH --nodes={N}",
        f"#SBATCH --ntasks={W}",
        f"#SBATCH --ntasks-per-node={G}",
    ]
    if options.slurm_gpus:
        head.append(f"#SBATCH --gpus-per-node={G}")
    head += [f"#SBATCH --nodelist={compress_hostlist(list(layout.hosts))}", "#SBATCH --exclusive",
             "#SBATCH --output=moeplace-%j.out"]
    for key in ("partition", "account", "time"):
        if getattr(options, key):
            head.append(f"#SBATCH --{key}={getattr(options, key)}")
    body = [
        f"# moeplace plan {plan_sha256[:12]} ({describe(layout)}): rank r starts on line r of hostfile",
        f"# (srun --distribution=arbitrary) and {WRAPPER} pins the GPU the plan gives it. Submit from this",
        "# directory; arguments go to the runtime worker:  sbatch job.sbatch --steps 20",
        "set -euo pipefail",
        'DIR=${MOEPLACE_DIR:-${SLURM_SUBMIT_DIR:-$PWD}}',
        '[ -f "$DIR/manifest.json" ] || { echo "job.sbatch: no manifest.json in $DIR: submit from the emitted '
        'directory or set MOEPLACE_DIR" >&2; exit 3; }',
        *placeholder_guard(layout),
        'export SLURM_HOSTFILE="$DIR/hostfile"',
        f"export MASTER_ADDR={layout.master_addr} MASTER_PORT={options.master_port}",
        'export MOEPLACE_RUN_DIR=${MOEPLACE_RUN_DIR:-$DIR/runs/slurm-$SLURM_JOB_ID}',
        'mkdir -p "$MOEPLACE_RUN_DIR"',
        f'srun --distribution=arbitrary --ntasks={W} --kill-on-bad-exit=1 "$DIR/{WRAPPER}" "$@"',
    ]
    return "\n".join(head + body) + "\n"


def placeholder_message(layout: Layout) -> str:
    """One line: the plan's hosts are generated names, and how to give it real ones."""
    return (f"the plan's hosts {compress_hostlist(list(layout.hosts))} are placeholders, not known hosts of "
            f"this cluster: re-emit with real names (moeplace emit PLAN --out DIR --hosts HOSTLIST) or set "
            f"{ALLOW_PLACEHOLDERS}=1")


def placeholder_guard(layout: Layout) -> list[str]:
    """job.sbatch's refusal to run a plan on placeholder hosts (exit 3), unless the variable allows it."""
    if not layout.placeholder_hosts:
        return []
    return [f'[ "${{{ALLOW_PLACEHOLDERS}:-0}}" = 1 ] || {{ echo "job.sbatch: {placeholder_message(layout)}" >&2; '
            'exit 3; }']


def rank_wrapper(layout: Layout, plan_sha256: str, options: EmitOptions) -> str:
    W = layout.world_size
    lines = [
        "#!/usr/bin/env bash",
        f"# moeplace plan {plan_sha256[:12]} ({describe(layout)}): srun or mpirun starts this once per rank.",
        "# It reads the rank's host and GPU from rankfile.tsv, refuses any other host, pins the GPU with",
        "# CUDA_VISIBLE_DEVICES from the plan and execs the runtime worker (MOEPLACE_PYTHON: the interpreter).",
        "set -euo pipefail",
        'DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)',
        f"WORLD_SIZE={W}",
        f'fail() {{ echo "{WRAPPER}: rank ${{RANK:-?}}: $*" >&2; exit 3; }}',
        'RANK=${SLURM_PROCID:-${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-}}}',
        '[ -n "$RANK" ] || fail "no SLURM_PROCID, OMPI_COMM_WORLD_RANK or PMI_RANK: start it with srun or mpirun"',
        'NTASKS=${SLURM_NTASKS:-${OMPI_COMM_WORLD_SIZE:-${PMI_SIZE:-$WORLD_SIZE}}}',
        '[ "$NTASKS" = "$WORLD_SIZE" ] || fail "started with $NTASKS tasks, the plan has $WORLD_SIZE ranks"',
        'IFS=$\'\\t\' read -r _ PLAN_HOST GPU _ < <(awk -F\'\\t\' -v r="$RANK" \'$1 == r {print; exit}\' '
        '"$DIR/rankfile.tsv") || fail "no line for rank $RANK in $DIR/rankfile.tsv"',
        'HERE=${SLURMD_NODENAME:-$(hostname -s)}',
        '[ "$HERE" = "$PLAN_HOST" ] || [ "${HERE%%.*}" = "${PLAN_HOST%%.*}" ] || fail "planned on $PLAN_HOST GPU $GPU '
        'but started on $HERE: launch with SLURM_HOSTFILE=hostfile and srun --distribution=arbitrary (job.sbatch)"',
        'export RANK WORLD_SIZE LOCAL_RANK="$GPU" CUDA_VISIBLE_DEVICES="$GPU" MOEPLACE_HOST="$PLAN_HOST"',
        f"export MASTER_ADDR=${{MASTER_ADDR:-{layout.master_addr}}} "
        f"MASTER_PORT=${{MASTER_PORT:-{options.master_port}}}",
        f'exec ${{MOEPLACE_PYTHON:-python3}} {WORKER} --manifest "$DIR/manifest.json" '
        '--out "${MOEPLACE_RUN_DIR:-$DIR/runs/wrapper}" "$@"',
    ]
    return "\n".join(lines) + "\n"
