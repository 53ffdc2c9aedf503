#!/usr/bin/env bash
# A one-node SLURM cluster in a folder, for tests: munged, slurmctld and slurmd from
# Debian's packages (munge, slurm-wlm), run as root, on free local ports, with every
# state, log, pid and socket file under DIR and nothing written to /etc.
#
#   .ci/slurm/start.sh DIR   # once the node takes jobs, prints the environment its
#                            # clients need, as lines SLURM_CONF=... and PATH=...
#   .ci/slurm/stop.sh DIR    # stops the daemons and jobs (also after a failed start)
#
# Clients find the cluster through SLURM_CONF, which sbatch passes on to the job. The
# Snakemake SLURM executor drops every SLURM_* variable before it calls srun inside a
# job, so DIR/bin, first on PATH, holds an srun that sets SLURM_CONF again.
# No accounting daemon: sacct does not work here; squeue and scontrol do, and finished
# jobs stay visible to them for MinJobAge seconds. The node has one fake GPU (type
# `fake`, device /dev/null) so that GPU requests are scheduled and can be inspected on a
# machine without one.
set -euo pipefail

dir=${1:?usage: start.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# munged refuses a socket folder that others can write to.
chmod 700 "$dir"
mkdir -p "$dir/spool" "$dir/state" "$dir/log" "$dir/bin"

for tool in munged mungekey slurmctld slurmd sinfo srun; do
    command -v "$tool" >/dev/null || { echo "start.sh: $tool not found (apt-get install munge slurm-wlm)" >&2; exit 1; }
done

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
ctld_port=$(free_port)
slurmd_port=$(free_port)
while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024) - 1024}' /proc/meminfo)

cat >"$dir/slurm.conf" <<EOF
ClusterName=xlt-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
GresTypes=gpu
NodeName=xlt-node NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:fake:1 State=UNKNOWN
PartitionName=debug Nodes=xlt-node Default=YES MaxTime=INFINITE State=UP
EOF
cat >"$dir/gres.conf" <<EOF
NodeName=xlt-node Name=gpu Type=fake File=/dev/null
EOF
export SLURM_CONF=$dir/slurm.conf
printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$SLURM_CONF" "$(command -v srun)" >"$dir/bin/srun"
chmod 755 "$dir/bin/srun"

# Each daemon runs in the foreground under setsid, in a process group of its own that
# stop.sh ends as a whole; its pid goes to DIR/NAME.daemon.
start_daemon() {
    local name=$1
    shift
    setsid "$@" >"$dir/log/$name.out" 2>&1 </dev/null &
    echo $! >"$dir/$name.daemon"
}

mungekey --create --keyfile="$dir/munge.key" --force
chmod 600 "$dir/munge.key"
start_daemon munged munged --foreground --force --socket="$dir/munge.socket" --key-file="$dir/munge.key" \
    --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munged.seed"
for _ in $(seq 50); do [ -S "$dir/munge.socket" ] && break; sleep 0.2; done
[ -S "$dir/munge.socket" ] || { echo "start.sh: munged did not start:" >&2; cat "$dir/log/munged.out" >&2; exit 1; }

start_daemon slurmctld slurmctld -D -i -f "$dir/slurm.conf"
start_daemon slurmd slurmd -D -N xlt-node -f "$dir/slurm.conf"

# Up when the node takes jobs; a daemon that died on start fails here with its log.
state=
for _ in $(seq 60); do
    state=$(sinfo --noheader --nodes=xlt-node --format=%t 2>/dev/null || true)
    if [ "$state" = idle ]; then
        printf 'SLURM_CONF=%s\nPATH=%s\n' "$SLURM_CONF" "$dir/bin:$PATH"
        exit 0
    fi
    for name in slurmctld slurmd munged; do
        if ! kill -0 "$(cat "$dir/$name.daemon")" 2>/dev/null; then
            echo "start.sh: $name exited on start:" >&2
            tail -n 30 "$dir/log/$name.out" >&2
            exit 1
        fi
    done
    sleep 0.5
done
echo "start.sh: node not idle after 30 s (state: ${state:-none}):" >&2
tail -n 30 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2
exit 1
