#!/usr/bin/env bash
# A one-node SLURM for the `slurm` tests: `cpu` (default) and `gpu` partitions, fake GPUs.
#
#   sudo bash .ci/slurm.sh start    # install if missing, configure, start, wait until idle
#   sudo bash .ci/slurm.sh stop     # stop the daemons through their PID files
#   bash .ci/slurm.sh status        # exit 0 when the node answers and is usable
#
# Idempotent: rewrites the config (restarting the daemons only if it changed) and starts
# only what is not running. No systemd, no cgroups, no accounting (the profile's status
# command is squeue). Needs root; Debian/Ubuntu packages slurmctld slurmd slurm-client munge.
# Facts behind each line: shared/notes/slurm-single-node.md.
set -euo pipefail

FAKE_GPUS=${FAKE_GPUS:-2}
CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm
STATE_DIR=/var/lib/slurm
NODE=$(hostname -s)

log() { echo "slurm.sh: $*" >&2; }

install_packages() {
    local missing=()
    for pkg in slurmctld slurmd slurm-client munge; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

start_munge() {
    install -d -o munge -g munge -m 755 /run/munge
    [[ -f /etc/munge/munge.key ]] || mungekey --create
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        runuser -u munge -- /usr/sbin/munged # refuses to run as root
        sleep 0.2
        munge -n | unmunge >/dev/null
    fi
}

write_config() {
    # Node topology from slurmd -C, so slurmd does not reconfigure socket/core boundaries.
    local topology sockets cores threads memory
    topology=$(slurmd -C | head -1)
    field() { grep -o "\b$1=[0-9]*" <<<"$topology" | cut -d= -f2; }
    sockets=$(field SocketsPerBoard)
    cores=$(field CoresPerSocket)
    threads=$(field ThreadsPerCore)
    memory=$(field RealMemory)
    local cpus=$((sockets * cores * threads))
    mkdir -p "$CONF_DIR/fakegpu" "$LOG_DIR" "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd"
    # slurmd 22.05 drops file-less GPUs; /dev/null links pass its device check.
    for ((i = 0; i < FAKE_GPUS; i++)); do ln -sfn /dev/null "$CONF_DIR/fakegpu/nvidia$i"; done
    local new
    new=$(mktemp)
    cat >"$new" <<EOF
# Written by .ci/slurm.sh: one node, cpu + gpu partitions, fake GPUs, no accounting.
ClusterName=ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
MinJobAge=600
KillWait=10
SlurmdTimeout=300
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$memory Gres=gpu:$FAKE_GPUS State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
    echo "NodeName=$NODE Name=gpu File=$CONF_DIR/fakegpu/nvidia[0-$((FAKE_GPUS - 1))]" >"$new.gres"
    local changed=0
    cmp -s "$new" "$CONF_DIR/slurm.conf" || { mv "$new" "$CONF_DIR/slurm.conf"; changed=1; }
    cmp -s "$new.gres" "$CONF_DIR/gres.conf" || { mv "$new.gres" "$CONF_DIR/gres.conf"; changed=1; }
    rm -f "$new" "$new.gres"
    ((changed)) && stop_daemons
    return 0
}

running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_daemons() {
    running /run/slurmctld.pid || /usr/sbin/slurmctld
    running /run/slurmd.pid || /usr/sbin/slurmd
}

stop_daemons() {
    local pidfile pid
    for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
        running "$pidfile" || continue
        pid=$(cat "$pidfile")
        kill "$pid"
        # slurmd can take >10 s to stop once slurmctld is gone
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$pidfile"
    done
}

wait_idle() {
    local state
    for _ in $(seq 100); do
        state=$(sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -1 || true)
        case "$state" in
        idle | mixed | allocated) return 0 ;;
        drain* | inval*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
        esac
        for pidfile in /run/slurmctld.pid /run/slurmd.pid; do
            if ! running "$pidfile"; then
                log "$(basename "$pidfile" .pid) died; its log ends:"
                tail -20 "$LOG_DIR/$(basename "$pidfile" .pid).log" >&2 || true
                return 1
            fi
        done
        sleep 0.2
    done
    log "node $NODE not idle after 20 s (state: ${state:-none}); slurmctld log ends:"
    tail -20 "$LOG_DIR/slurmctld.log" >&2 || true
    return 1
}

case "${1:-}" in
start)
    [[ $(id -u) -eq 0 ]] || { log "start needs root"; exit 1; }
    started=$(date +%s.%N)
    install_packages
    start_munge
    write_config
    start_daemons
    wait_idle
    log "cluster up in $(echo "$(date +%s.%N) - $started" | bc) s: $(sinfo -h -o '%P %a %T' | tr '\n' ' ')"
    ;;
stop) stop_daemons ;;
status) wait_idle ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
