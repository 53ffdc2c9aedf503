#!/usr/bin/env bash
# Stops the cluster that .ci/slurm/start.sh DIR started, and every job it ran: cancels
# the jobs, ends each daemon's process group (TERM, then KILL after 10 s), then kills any
# process left whose environment names this cluster's SLURM_CONF (job steps run in
# sessions of their own, outside the daemons' groups). Safe after a failed or partial
# start, and twice.
set -uo pipefail

dir=${1:?usage: stop.sh DIR}
dir=$(cd "$dir" 2>/dev/null && pwd) || exit 0
conf=$dir/slurm.conf

if [ -f "$dir/slurmctld.daemon" ] && kill -0 "$(cat "$dir/slurmctld.daemon")" 2>/dev/null; then
    SLURM_CONF=$conf timeout 10 scancel --user=root 2>/dev/null
fi

for name in slurmd slurmctld munged; do
    pidfile=$dir/$name.daemon
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -TERM -- "-$pid" 2>/dev/null
    for _ in $(seq 50); do
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL -- "-$pid" 2>/dev/null
    rm -f "$pidfile"
done

# This script and whoever called it may carry SLURM_CONF too: spare them.
spared=" "
pid=$$
while [ "$pid" -gt 1 ] 2>/dev/null; do
    spared+="$pid "
    pid=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null) || break
done
for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    case $spared in *" $pid "*) continue ;; esac
    if { tr '\0' '\n' <"$proc/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$conf"; then
        kill -KILL "$pid" 2>/dev/null
    fi
done
exit 0
