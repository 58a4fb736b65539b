#!/usr/bin/env bash
# moeplace plan <plan-sha12> (tiny-test on 3 nodes x 3 GPUs): srun or mpirun starts this once per rank.
# It reads the rank's host and GPU from rankfile.tsv, refuses any other host, pins the GPU with
# CUDA_VISIBLE_DEVICES from the plan and execs the runtime worker (MOEPLACE_PYTHON: the interpreter).
set -euo pipefail
DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORLD_SIZE=9
fail() { echo "moeplace-rank.sh: rank ${RANK:-?}: $*" >&2; exit 3; }
RANK=${SLURM_PROCID:-${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-}}}
[ -n "$RANK" ] || fail "no SLURM_PROCID, OMPI_COMM_WORLD_RANK or PMI_RANK: start it with srun or mpirun"
NTASKS=${SLURM_NTASKS:-${OMPI_COMM_WORLD_SIZE:-${PMI_SIZE:-$WORLD_SIZE}}}
[ "$NTASKS" = "$WORLD_SIZE" ] || fail "started with $NTASKS tasks, the plan has $WORLD_SIZE ranks"
IFS=$'\t' read -r _ PLAN_HOST GPU _ < <(awk -F'\t' -v r="$RANK" '$1 == r {print; exit}' "$DIR/rankfile.tsv") || fail "no line for rank $RANK in $DIR/rankfile.tsv"
HERE=${SLURMD_NODENAME:-$(hostname -s)}
[ "$HERE" = "$PLAN_HOST" ] || [ "${HERE%%.*}" = "${PLAN_HOST%%.*}" ] || fail "planned on $PLAN_HOST GPU $GPU but started on $HERE: launch with SLURM_HOSTFILE=hostfile and srun --distribution=arbitrary (job.sbatch)"
export RANK WORLD_SIZE LOCAL_RANK="$GPU" CUDA_VISIBLE_DEVICES="$GPU" MOEPLACE_HOST="$PLAN_HOST"
export MASTER_ADDR=${MASTER_ADDR:-node001} MASTER_PORT=${MASTER_PORT:-29500}
exec ${MOEPLACE_PYTHON:-python3} -m moeplace.runtime.worker --manifest "$DIR/manifest.json" --out "${MOEPLACE_RUN_DIR:-$DIR/runs/wrapper}" "$@"
