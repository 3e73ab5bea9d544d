#!/usr/bin/env bash
# A one-node SLURM on this machine, for `repro run --launcher slurm` and the tests marked `cluster`:
# installs Debian's slurm-wlm and munge where missing, writes a slurm.conf that names this host as the
# controller and the only node, and starts munged, slurmctld and slurmd (as root, without systemd).
# Idempotent: a second call finds the node up and says so. Exit 0 with the node idle, else 1 with one line.
set -uo pipefail

say() { echo "start_slurm: $*"; }
fail() { echo "start_slurm: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (it installs packages and starts daemons)"
if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
    say "SLURM is up ($(sinfo -h -o '%n %t %c CPUs' | head -1))"
    exit 0
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || fail "slurmctld and munged are missing and there is no apt-get to install them"
    say "installing slurm-wlm and munge"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge) >/tmp/start_slurm-apt.log 2>&1 \
        || fail "apt-get install slurm-wlm munge failed (log: /tmp/start_slurm-apt.log)"
fi

host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge /var/log/munge
cat > /etc/slurm/slurm.conf <<CONF
# written by scripts/start_slurm.sh: one node, this host
ClusterName=repro
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=30
MinJobAge=300
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || munged --force || fail "munged did not start"
pgrep -x slurmctld >/dev/null || slurmctld -i || fail "slurmctld did not start (log: /var/log/slurm/slurmctld.log)"
pgrep -x slurmd >/dev/null || slurmd || fail "slurmd did not start (log: /var/log/slurm/slurmd.log)"
for _ in $(seq 30); do
    if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
        say "SLURM is up ($(sinfo -h -o '%n %t %c CPUs' | head -1))"
        exit 0
    fi
    scontrol update nodename="$host" state=resume >/dev/null 2>&1
    sleep 1
done
fail "the node did not come up: $(sinfo -h -o '%n %t %E' 2>&1 | head -1) (logs: /var/log/slurm/)"
