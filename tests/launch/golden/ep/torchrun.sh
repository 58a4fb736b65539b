#!/usr/bin/env bash
# moeplace plan <plan-sha12> (tiny-ep on 2 nodes x 2 GPUs): run on every host of the plan, e.g.
#   pdsh -w gpu[07-08] 'cd DIR && ./torchrun.sh static --steps 20'
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
static/gpu07) exec $TORCHRUN --nnodes=2 --nproc-per-node=2 --node-rank=0 --master-addr=gpu07 --master-port=31000 -m moeplace.runtime.worker "${WORKER_ARGS[@]}" "$@" ;;
static/gpu08) exec $TORCHRUN --nnodes=2 --nproc-per-node=2 --node-rank=1 --master-addr=gpu07 --master-port=31000 -m moeplace.runtime.worker "${WORKER_ARGS[@]}" "$@" ;;
c10d/*) [[ " gpu07 gpu08 " == *" $HOST "* ]] && exec $TORCHRUN --nnodes=2 --nproc-per-node=2 --rdzv-backend=c10d --rdzv-endpoint=gpu07:31001 --rdzv-id=moeplace-<plan-sha12> -m moeplace.runtime.worker "${WORKER_ARGS[@]}" "$@" ;;
esac
case "$MODE" in
static | c10d) echo "torchrun.sh: host $HOST is not in the plan (gpu[07-08]); set MOEPLACE_HOST" >&2 ;;
*) echo "torchrun.sh: MODE must be static or c10d, got $MODE" >&2 ;;
esac
exit 3
