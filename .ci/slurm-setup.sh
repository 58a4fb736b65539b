#!/usr/bin/env bash
# Start a one-host Slurm (munged + slurmctld + slurmd) for the launch tests, as root; idempotent.
#
# Installs Debian's slurm-wlm and munge when missing, writes /etc/slurm/slurm.conf for this host (node
# name = `hostname -s`, CPUs = max(nproc, MOEPLACE_SLURM_SLOTS) so that a plan of 1 node x 4..8 ranks fits
# on a small CI machine, and MOEPLACE_SLURM_SLOTS generic "gpu" resources without devices so that sbatch
# scripts asking for --gpus-per-node are accepted), starts the daemons and waits until `sinfo` shows the
# node idle. Exits non-zero with a message naming what failed. Only the daemons this script started
# (found by their pid files) are ever stopped, and only to apply a changed slurm.conf.
#
# Environment: MOEPLACE_SLURM_SLOTS (default 8), MOEPLACE_SLURM_TIMEOUT_S (default 90),
#              MOEPLACE_SLURM_FORCE=1 to replace a slurm.conf that this script did not write.
set -euo pipefail

SLOTS=${MOEPLACE_SLURM_SLOTS:-8}
TIMEOUT_S=${MOEPLACE_SLURM_TIMEOUT_S:-90}
CONF=/etc/slurm/slurm.conf
GRES_CONF=/etc/slurm/gres.conf
MARKER="# written by moeplace .ci/slurm-setup.sh"
LOG_DIR=/var/log/slurm

die() { echo "slurm-setup: error: $*" >&2; exit 1; }
say() { echo "slurm-setup: $*"; }

show_logs() {
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        [ -f "$f" ] && { echo "--- last lines of $f" >&2; tail -n 15 "$f" >&2; }
    done
    return 0
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts munged, slurmctld and slurmd)"

# -- packages ---------------------------------------------------------------------------------------
need=()
for pkg in munge slurmctld slurmd slurm-client; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null || die "packages missing (${need[*]}) and apt-get is not available"
    say "installing slurm-wlm munge (missing: ${need[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null || die "apt-get install slurm-wlm munge failed"
fi
for exe in munged slurmctld slurmd sinfo sbatch scontrol; do
    command -v "$exe" >/dev/null || die "$exe not found after installing slurm-wlm and munge"
done

NODE=$(hostname -s)
[ -n "$NODE" ] || die "hostname -s is empty"
getent hosts "$NODE" >/dev/null || die "host name $NODE does not resolve (add it to /etc/hosts)"
CPUS=$(nproc)
[ "$CPUS" -ge "$SLOTS" ] || CPUS=$SLOTS

# -- munge ------------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then mungekey --create --force >/dev/null; else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged --force || { show_logs; die "munged did not start"; }
    for _ in $(seq 1 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
    munge -n | unmunge >/dev/null 2>&1 || { show_logs; die "munge credentials do not round-trip (munge -n | unmunge)"; }
fi

# -- slurm.conf -------------------------------------------------------------------------------------
NEW_CONF=$(cat <<EOF
$MARKER: one host, $SLOTS task slots and $SLOTS generic gpu resources (no devices)
ClusterName=moeplace-ci
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
GresTypes=gpu
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$NODE CPUs=$CPUS Gres=gpu:$SLOTS State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
)
FAKE_DIR=/var/lib/moeplace-ci
NEW_GRES="$MARKER
AutoDetect=off
NodeName=$NODE Name=gpu File=$FAKE_DIR/gpu[0-$((SLOTS - 1))]"

changed=0
if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF" && [ "${MOEPLACE_SLURM_FORCE:-0}" != 1 ]; then
    if sinfo -h >/dev/null 2>&1; then
        say "a Slurm not configured by this script is running; leaving it alone"
        exit 0
    fi
    die "$CONF exists and was not written by this script (set MOEPLACE_SLURM_FORCE=1 to replace it)"
fi
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$NEW_CONF" ]; then
    printf '%s\n' "$NEW_CONF" > "$CONF.tmp" && mv "$CONF.tmp" "$CONF"
    changed=1
fi
if [ ! -f "$GRES_CONF" ] || [ "$(cat "$GRES_CONF")" != "$NEW_GRES" ]; then
    printf '%s\n' "$NEW_GRES" > "$GRES_CONF.tmp" && mv "$GRES_CONF.tmp" "$GRES_CONF"
    changed=1
fi
mkdir -p /var/spool/slurmd /var/spool/slurmctld "$LOG_DIR" "$FAKE_DIR"
for i in $(seq 0 $((SLOTS - 1))); do [ -e "$FAKE_DIR/gpu$i" ] || : > "$FAKE_DIR/gpu$i"; done

# -- daemons ----------------------------------------------------------------------------------------
alive() {  # alive PIDFILE NAME: the pid in PIDFILE runs NAME
    local pid
    [ -f "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ]
}
stop() {  # stop PIDFILE NAME: end the daemon this script started, by its pid
    alive "$1" "$2" || return 0
    local pid; pid=$(cat "$1")
    say "restarting $2 (pid $pid) for the new configuration"
    kill "$pid"
    for _ in $(seq 1 20); do [ -d "/proc/$pid" ] || return 0; sleep 0.5; done
    die "$2 (pid $pid) did not stop"
}
if [ "$changed" = 1 ]; then
    stop /run/slurmd.pid slurmd
    stop /run/slurmctld.pid slurmctld
fi
if ! alive /run/slurmctld.pid slurmctld; then
    say "starting slurmctld"
    slurmctld || { show_logs; die "slurmctld did not start"; }
fi
if ! alive /run/slurmd.pid slurmd; then
    say "starting slurmd"
    slurmd || { show_logs; die "slurmd did not start"; }
fi

# -- wait for the node ------------------------------------------------------------------------------
deadline=$((SECONDS + TIMEOUT_S))
state=""
while [ "$SECONDS" -lt "$deadline" ]; do
    state=$(sinfo -h -n "$NODE" -o '%t' 2>/dev/null | head -n 1 || true)
    case "$state" in
        idle) say "node $NODE idle ($CPUS CPUs, $SLOTS gpu resources); sinfo:"; sinfo; exit 0 ;;
        down*|drain*|drng*|fail*|inval*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
show_logs
die "node $NODE not idle after ${TIMEOUT_S} s (sinfo state: '${state:-no answer}')"
