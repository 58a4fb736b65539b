#!/usr/bin/env bash
# moeplace plan <plan-sha12> (tiny-test on 3 nodes x 3 GPUs): run on every host of the plan, e.g.
#   pdsh -w node[001-003] 'cd DIR && ./torchrun.sh static --steps 20'
# MODE static: --node-rank from the plan's node order; MODE c10d: elastic rendezvous. Workers find
# their experts by (host name, LOCAL_RANK). TORCHRUN overrides the launcher, MOEPLACE_HOST the host
# name, MOEPLACE_RUN_DIR the output directory; other arguments go to the worker.
set -euo pipefail
DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODE=${1:-static}
shift $(( $# > 0 ? 1 : 0 ))
HOST=${MOEPLACE_HOST:-$(hostname -s)}
export MOEPLACE_HOST="$HOST"
TORCHRUN=${TORCHRUN:-torchrun}
WORKER_ARGS=(--manifest "$DIR/manifest.json" --out "${MOEPLACE_RUN_DIR:-$DIR/runs/torchrun-$MODE}")
case "$MODE/$HOST" in
static/node001) exec $TORCHRUN --nnodes=3 --nproc-per-node=3 --node-rank=0 --master-addr=node001 --master-port=29500 -m moeplace.runtime.worker "${WORKER_ARGS[@]}" "$@" ;;
static/node002) exec $TORCHRUN --nnodes=3 --nproc-per-node=3 --node-rank=1 --master-addr=node001 --master-port=29500 -m moeplace.runtime.worker "${WORKER_ARGS[@]}" "$@" ;;
static/node003) exec $TORCHRUN --nnodes=3 --nproc-per-node=3 --node-rank=2 --master-addr=node001 --master-port=29500 -m moeplace.runtime.worker "${WORKER_ARGS[@]}" "$@" ;;
c10d/*) [[ " node001 node002 node003 " == *" $HOST "* ]] && exec $TORCHRUN --nnodes=3 --nproc-per-node=3 --rdzv-backend=c10d --rdzv-endpoint=node001:29400 --rdzv-id=moeplace-<plan-sha12> -m moeplace.runtime.worker "${WORKER_ARGS[@]}" "$@" ;;
esac
case "$MODE" in
static | c10d) echo "torchrun.sh: host $HOST is not in the plan (node[001-003]); set MOEPLACE_HOST" >&2 ;;
*) echo "torchrun.sh: MODE must be static or c10d, got $MODE" >&2 ;;
esac
exit 3
