#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the tests that send a sweep through sbatch
# (`make slurm`). It installs Debian's slurm-wlm (slurmctld, slurmd, munge) with apt-get when run
# as root, writes /etc/slurm/slurm.conf (only if absent or written by this script), and starts
# munged, slurmctld and slurmd as plain background daemons (no systemd needed).
#
# Idempotent: if the cluster already answers (`scontrol ping`, node idle in `sinfo`) with the
# configuration below, it says so and does nothing. Where it cannot bring the cluster up (no
# apt-get, not root, install failure, a daemon that does not start), it prints one line saying
# why and exits 0: the Slurm tests then skip with their own reason.
set -u

CONF=/etc/slurm/slurm.conf
MARK="# Written by kt_nb scripts/slurm-cluster.sh (make slurm); delete this line to keep local edits."
LOGDIR=/var/log/slurm
RUNDIR=/run/slurm
WAIT_S=20
NODE=$(hostname -s)
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "Slurm: $*"; }
fail() { say "$*; the Slurm tests will skip"; exit 0; }
# The last lines of a log file, on one line.
tail1() { [ -r "$1" ] && tail -n "${2:-3}" "$1" 2>/dev/null | tr '\n' ' ' | tr -s ' '; }
have() { command -v "$1" >/dev/null; }
# State of this machine's node as sinfo prints it (idle, mix, alloc, down*, drain, ...), or empty.
node_state() { sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n 1; }
ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
cluster_up() { have sinfo && have scontrol && ctld_up && [[ "$(node_state)" =~ ^(idle|mix|alloc|comp)$ ]]; }
ours() { [ ! -e "$CONF" ] || grep -qxF "$MARK" "$CONF"; }
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

# The configuration this script writes. The node line takes this machine's CPUs and memory from
# `slurmd -C` ("CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=...").
render_conf() {
    local hw user
    hw=$(slurmd -C 2>/dev/null | head -n 1 | sed -n 's/^NodeName=[^ ]* //p')
    [ -n "$hw" ] || hw="CPUs=$(nproc) RealMemory=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024))"
    # The daemons run as Debian's `slurm` user where there is one, else as root.
    if id slurm >/dev/null 2>&1; then user=slurm; else user=root; fi
    cat <<EOF
$MARK
# A single-node cluster for kt_nb's sweep tests: no accounting (so no sacct), no cgroups.
ClusterName=kt_nb
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=$user
AuthType=auth/munge
CryptoType=crypto/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s).
AuthInfo=cred_expire=15
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SchedulerType=sched/backfill
# Cores are the consumable resource, not memory: jobs without --mem share the node.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# A job whose dependency can never be met (afterok on a failed job) is cancelled, not left pending.
DependencyParameters=kill_invalid_depend
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUNDIR/slurmctld.pid
SlurmdPidFile=$RUNDIR/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
# scancel: SIGTERM, then SIGKILL after KillWait s (default 30; submitit's jobs ignore SIGTERM, and
# no job is scheduled while one is still completing).
KillWait=5
# Finished jobs stay visible to squeue -t all and scontrol show job for MinJobAge seconds.
MinJobAge=300
NodeName=$NODE NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

# 1. Already up, and with this script's configuration if it is ours: nothing to do.
before="controller $(have scontrol && ctld_up && echo up || echo down), node '$(have sinfo && node_state)'"
if cluster_up && { ! ours || [ "$(cat "$CONF")" = "$(render_conf)" ]; }; then
    say "cluster up (node $NODE $(node_state))"
    exit 0
fi

# 2. Install slurm-wlm (brings slurmctld, slurmd, munge) when something is missing.
missing=""
for cmd in sbatch sinfo scontrol slurmctld slurmd munged; do have "$cmd" || missing="$missing $cmd"; done
if [ -n "$missing" ]; then
    have apt-get || fail "not installed (missing:$missing) and no apt-get here"
    [ "$(id -u)" = 0 ] || fail "not installed (missing:$missing) and no root for apt-get"
    t0=$SECONDS
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm >/dev/null 2>&1) \
        || fail "apt-get install slurm-wlm failed"
    say "installed slurm-wlm with apt-get in $((SECONDS - t0)) s"
fi
[ "$(id -u)" = 0 ] || fail "installed but not up, and starting its daemons needs root"

# 3. The configuration: ours to write only if absent or written by this script.
ours || fail "$CONF was not written by this script and the cluster is not up; leaving it alone"
t0=$SECONDS
new=$(render_conf)
user=$(sed -n 's/^SlurmUser=//p' <<<"$new")
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$LOGDIR" "$RUNDIR"
chown "$user:" /var/spool/slurmctld "$LOGDIR" "$RUNDIR"
if [ "$(cat "$CONF" 2>/dev/null)" != "$new" ]; then
    { printf '%s\n' "$new" >"$CONF" && chmod 644 "$CONF"; } || fail "could not write $CONF"
    # Daemons this script started with an older configuration: stop them to restart with this one.
    if pid_alive "$RUNDIR/slurmctld.pid" || pid_alive "$RUNDIR/slurmd.pid"; then
        say "configuration changed; restarting slurmctld and slurmd"
        scontrol shutdown >/dev/null 2>&1
        for _ in $(seq 15); do
            pid_alive "$RUNDIR/slurmctld.pid" || pid_alive "$RUNDIR/slurmd.pid" || break
            sleep 1
        done
    fi
fi

# 4. Munge: a key (Debian's package makes one; else mungekey, create-munge-key or random bytes),
# and munged running as the munge user.
KEY=/etc/munge/munge.key
if [ ! -s "$KEY" ]; then
    mkdir -p /etc/munge
    mungekey --create --keyfile="$KEY" 2>/dev/null || create-munge-key -f 2>/dev/null \
        || dd if=/dev/urandom of="$KEY" bs=1 count=1024 status=none || fail "could not create $KEY"
    chown -R munge: /etc/munge 2>/dev/null
    chmod 700 /etc/munge
    chmod 400 "$KEY"
fi
if ! munge_ok; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge: /run/munge /var/log/munge /var/lib/munge 2>/dev/null
    chmod 755 /run/munge
    runuser -u munge -- munged 2>/dev/null || munged --force 2>/dev/null
    for _ in 1 2 3 4 5; do munge_ok && break; sleep 1; done
    munge_ok || fail "munged did not start: $(tail1 /var/log/munge/munged.log)"
fi

# 5. slurmctld, then slurmd, as background daemons (each forks and writes its pid file).
pid_alive "$RUNDIR/slurmctld.pid" || slurmctld >/dev/null 2>&1 \
    || fail "slurmctld did not start: $(tail1 "$LOGDIR/slurmctld.log")"
for _ in $(seq 10); do ctld_up && break; sleep 1; done
ctld_up || fail "slurmctld is not answering: $(tail1 "$LOGDIR/slurmctld.log")"
pid_alive "$RUNDIR/slurmd.pid" || slurmd >/dev/null 2>&1 \
    || fail "slurmd did not start: $(tail1 "$LOGDIR/slurmd.log")"

# 6. Wait for the node to register and turn idle; a node left down or drained is resumed.
for _ in $(seq "$WAIT_S"); do
    cluster_up && break
    [[ "$(node_state)" =~ ^(down|drain|drng|fail) ]] \
        && scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1
    sleep 1
done
if cluster_up; then
    say "cluster up (node $NODE $(node_state), partition debug) after $((SECONDS - t0)) s (before: $before)"
else
    node=$(scontrol show node "$NODE" 2>&1 | grep -oE 'State=[^ ]+|Reason=.*' | tr '\n' ' ' | tr -s ' ')
    fail "node $NODE not idle after $WAIT_S s (${node:-no node}); slurmd: $(tail1 "$LOGDIR/slurmd.log" 2); slurmctld: $(tail1 "$LOGDIR/slurmctld.log" 2)"
fi
