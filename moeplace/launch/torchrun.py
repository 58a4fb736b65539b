"""`torchrun.sh`: one torchrun command per node, static (`--node-rank`) or c10d rendezvous.

Run the script on every host of the plan (pdsh, clush, ssh, a Kubernetes pod per node); it finds its own
line by host name. Static rendezvous gives node i of the plan `--node-rank=i` and meets at rank 0's host;
c10d rendezvous is elastic and numbers nodes as they arrive, which is why the worker never trusts `RANK`:
it finds its experts by (host name, LOCAL_RANK) in the manifest and joins under the plan's rank.
"""

from __future__ import annotations

from moeplace.launch.layout import Layout
from moeplace.launch.options import EmitOptions
from moeplace.launch.slurm import WORKER, describe
from moeplace.topologies.hostlist import compress_hostlist


def node_command(layout: Layout, node: int, options: EmitOptions) -> str:
    """The static-rendezvous command of one node (without the worker's arguments)."""
    return (f"$TORCHRUN --nnodes={layout.num_nodes} --nproc-per-node={layout.gpus_per_node} --node-rank={node} "
            f"--master-addr={layout.master_addr} --master-port={options.master_port} {WORKER}")


def c10d_command(layout: Layout, plan_sha256: str, options: EmitOptions) -> str:
    return (f"$TORCHRUN --nnodes={layout.num_nodes} --nproc-per-node={layout.gpus_per_node} --rdzv-backend=c10d "
            f"--rdzv-endpoint={layout.master_addr}:{options.rdzv_port} --rdzv-id=moeplace-{plan_sha256[:12]} "
            f"{WORKER}")


def torchrun_script(layout: Layout, plan_sha256: str, options: EmitOptions) -> str:
    args = '"${WORKER_ARGS[@]}" "$@"'
    hostlist = compress_hostlist(list(layout.hosts))
    lines = [
        "#!/usr/bin/env bash",
        f"# moeplace plan {plan_sha256[:12]} ({describe(layout)}): run on every host of the plan, e.g.",
        f"#   pdsh -w {hostlist} 'cd DIR && ./torchrun.sh static --steps 20'",
        "# MODE static: --node-rank from the plan's node order; MODE c10d: elastic rendezvous. Workers find",
        "# their experts by (host name, LOCAL_RANK). TORCHRUN overrides the launcher, MOEPLACE_HOST the host",
        "# name, MOEPLACE_RUN_DIR the output directory; other arguments go to the worker.",
        "set -euo pipefail",
        'DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)',
        'MODE=${1:-static}',
        'shift $(( $# > 0 ? 1 : 0 ))',
        'HOST=${MOEPLACE_HOST:-$(hostname -s)}',
        'export MOEPLACE_HOST="$HOST"',
        'TORCHRUN=${TORCHRUN:-torchrun}',
        'WORKER_ARGS=(--manifest "$DIR/manifest.json" --out "${MOEPLACE_RUN_DIR:-$DIR/runs/torchrun-$MODE}")',
        'case "$MODE/$HOST" in',
    ]
    for node, host in enumerate(layout.hosts):
        lines.append(f"static/{host}) exec {node_command(layout, node, options)} {args} ;;")
    lines += [
        f"c10d/*) [[ \" {' '.join(layout.hosts)} \" == *\" $HOST \"* ]] && "
        f"exec {c10d_command(layout, plan_sha256, options)} {args} ;;",
        "esac",
        'case "$MODE" in',
        f'static | c10d) echo "torchrun.sh: host $HOST is not in the plan ({hostlist}); set MOEPLACE_HOST" >&2 ;;',
        '*) echo "torchrun.sh: MODE must be static or c10d, got $MODE" >&2 ;;',
        "esac",
        "exit 3",
    ]
    return "\n".join(lines) + "\n"
