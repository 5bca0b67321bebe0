#!/usr/bin/env bash
# start_slurm.sh - install (idempotently) and start a REAL single-node Slurm
# cluster from Debian 12 packages, without systemd:
#   munged -> [mariadbd -> slurmdbd] -> slurmctld -> slurmd -> [slurmrestd x2]
# then wait until `sinfo` shows the node idle.
#
# Every daemon this script launches gets its pid (and executable path) recorded
# in $SLURM_STATE_DIR/pids/; stop_slurm.sh stops exactly those pids and nothing
# else. A daemon that is already running but was NOT launched by this script is
# left alone (and not recorded). Running the script again is a no-op while the
# recorded daemons are alive; dead ones are started again.
#
# Knobs (environment):
#   SLURM_STATE_DIR   state dir for pid records/log   (default /tmp/lute-slurm)
#   SLURM_WITH_DBD    1 = mariadb + slurmdbd (real sacct)
#                     0 = no slurmdbd; jobcomp/filetxt only (`sacct -c`)
#                     (default: what the cluster already runs, else 0)
#   SLURM_WITH_RESTD  1 = start slurmrestd (jwt on TCP + local on unix socket)
#   SLURM_RESTD_ADDR  TCP listen address of the JWT slurmrestd (127.0.0.1:6820)
#   SLURM_DB_PORT     loopback port of the private mariadbd      (default 3307)
#   SLURM_PARTITION   partition name                             (default debug)
set -euo pipefail

STATE_DIR=${SLURM_STATE_DIR:-/tmp/lute-slurm}
PID_DIR=$STATE_DIR/pids
# A later caller that does not say (the dev stack) must not undo accounting
# that an earlier one set up.
if [ -z "${SLURM_WITH_DBD:-}" ] && grep -qs '^AccountingStorageType=accounting_storage/slurmdbd' /etc/slurm/slurm.conf; then
    WITH_DBD=1
else
    WITH_DBD=${SLURM_WITH_DBD:-0}
fi
WITH_RESTD=${SLURM_WITH_RESTD:-0}
RESTD_ADDR=${SLURM_RESTD_ADDR:-127.0.0.1:6820}
RESTD_DIR=/run/slurmrestd
RESTD_SOCK=$RESTD_DIR/slurmrestd.socket
DB_PORT=${SLURM_DB_PORT:-3307}
DB_DIR=/var/lib/slurm/mariadb
DB_RUN=/run/slurm-mariadb
DB_PASS=slurmdbpass
PARTITION=${SLURM_PARTITION:-debug}
CLUSTER=local
JWT_KEY=/var/lib/slurm/slurmctld/jwt_hs256.key
NODE=$(hostname -s)
T0=$(date +%s.%N)

log() { printf '[start_slurm %6.2fs] %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN{print a-b}')" "$*"; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
mkdir -p "$PID_DIR"

# ---------------------------------------------------------------- install ---
PKGS=(munge slurmctld slurmd slurm-client slurmrestd slurm-wlm-jwt-plugin curl)
[ "$WITH_DBD" = 1 ] && PKGS+=(slurmdbd mariadb-server)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep postinst from starting services
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; own_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    log "install done"
else
    log "packages already installed"
fi

# ------------------------------------------------------------ pid helpers ---
# alive NAME: the daemon recorded in $PID_DIR/NAME.pid is still that program
alive() {
    local f=$PID_DIR/$1.pid pid exe
    [ -s "$f" ] || return 1
    pid=$(cat "$f"); exe=$(cat "$PID_DIR/$1.exe" 2>/dev/null || true)
    running "$pid" && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ]
}
# foreign PIDFILE EXE: a process that this script did not record is running
foreign() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    running "$pid" && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$2")" ]
}
# running PID: process exists and is not a zombie (PID 1 here reaps exited
# daemons only after ~1 s, so /proc/PID lingers as state Z)
running() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
# record NAME PID EXE: remember that this script launched PID. Waits until PID
# has exec'ed EXE: start-stop-daemon writes the pid file before its exec().
record() {
    local i want; want=$(readlink -f "$3")
    for ((i = 0; i < 100; i++)); do
        [ "$(readlink "/proc/$2/exe" 2>/dev/null)" = "$want" ] && break
        running "$2" || die "$1 (pid $2) exited right after start"
        sleep 0.05
    done
    [ "$(readlink "/proc/$2/exe" 2>/dev/null)" = "$want" ] || die "$1 (pid $2) is not $want"
    echo "$2" > "$PID_DIR/$1.pid"; echo "$want" > "$PID_DIR/$1.exe"
}
# wait_pidfile FILE SECS: wait until FILE names a live process; echo the pid
wait_pidfile() {
    local i pid
    for ((i = 0; i < $2 * 10; i++)); do
        if [ -s "$1" ]; then pid=$(cat "$1"); running "$pid" && { echo "$pid"; return 0; }; fi
        sleep 0.1
    done
    return 1
}
stop_recorded() {  # stop_recorded NAME WHY: stop a daemon this script recorded
    local name=$1 pid i
    alive "$name" || { rm -f "$PID_DIR/$name.pid" "$PID_DIR/$name.exe"; return 0; }
    pid=$(cat "$PID_DIR/$name.pid"); log "stopping $name (pid $pid): $2"
    kill -TERM "$pid"
    for ((i = 0; i < 300; i++)); do running "$pid" || break; sleep 0.1; done
    running "$pid" && kill -KILL "$pid"
    rm -f "$PID_DIR/$name.pid" "$PID_DIR/$name.exe"
}
# should_start NAME OWN_PIDFILE EXE: 0 if we must launch it
should_start() {
    if alive "$1"; then log "$1 already running (pid $(cat "$PID_DIR/$1.pid"), started by this script)"; return 1; fi
    rm -f "$PID_DIR/$1.pid" "$PID_DIR/$1.exe"
    if foreign "$2" "$3"; then log "$1 already running (pid $(cat "$2")) but NOT started by this script: leaving it alone"; return 1; fi
    rm -f "$2"
    return 0
}
# write_if_changed FILE MODE OWNER: stdin -> FILE; returns 0 if content changed
write_if_changed() {
    local tmp; tmp=$(mktemp)
    cat > "$tmp"
    if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
    install -m "$2" -o "${3%:*}" -g "${3#*:}" "$tmp" "$1"; rm -f "$tmp"
    return 0
}

# ---------------------------------------------------------- users & dirs ---
id slurmrestd >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin slurmrestd
install -d -o munge -g munge -m 0755 /run/munge
install -d -o slurm -g slurm -m 0755 /run/slurm /var/lib/slurm/slurmctld /var/log/slurm
install -d -o root -g root -m 0755 /var/lib/slurm/slurmd /etc/slurm
install -d -o slurmrestd -g slurmrestd -m 0755 "$RESTD_DIR"
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
fi
if [ ! -s "$JWT_KEY" ]; then
    dd if=/dev/urandom of="$JWT_KEY" bs=32 count=1 status=none
fi
chown slurm:slurm "$JWT_KEY"; chmod 0600 "$JWT_KEY"

# ------------------------------------------------------------ slurm.conf ---
# Hardware as slurmd sees it; RealMemory a bit lower so the node never goes
# INVALID if the VM reports a few MB less next time.
hw=$(slurmd -C | head -1)
hwv() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<< "$hw"; }
CPUS=$(hwv CPUs); BOARDS=$(hwv Boards); SPB=$(hwv SocketsPerBoard)
CPS=$(hwv CoresPerSocket); TPC=$(hwv ThreadsPerCore); MEM=$(hwv RealMemory)
MEM=$((MEM > 1024 ? MEM - 512 : MEM))
if [ "$WITH_DBD" = 1 ]; then
    ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux"
else
    ACCT="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi
CONF_CHANGED=0
write_if_changed /etc/slurm/slurm.conf 0644 root:root <<EOF && CONF_CHANGED=1
# written by start_slurm.sh
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
SlurmUser=slurm
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# reject impossible requests (e.g. --nodes=2, --ntasks=3) at submit time
EnforcePartLimits=ALL
# job_submit.lua raises min_nodes 0 -> 1 (--nodes=0-N crashes 22.05 slurmctld)
JobSubmitPlugins=lua
# finished jobs stay visible to scontrol/squeue -t all for this many seconds
MinJobAge=300
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
$ACCT
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS Boards=$BOARDS SocketsPerBoard=$SPB CoresPerSocket=$CPS ThreadsPerCore=$TPC RealMemory=$MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
write_if_changed /etc/slurm/job_submit.lua 0644 root:root <<'EOF' && CONF_CHANGED=1
-- written by start_slurm.sh
-- Slurm 22.05.8: a job with min_nodes=0 (sbatch --nodes=0-N) can be allocated
-- ZERO nodes while the node is busy, and slurmctld then segfaults. Raise it to 1.
function slurm_job_submit(job_desc, part_list, submit_uid)
    if job_desc.min_nodes == 0 then
        slurm.log_info("job_submit/lua: min_nodes 0 -> 1 (uid %u)", submit_uid)
        job_desc.min_nodes = 1
    end
    return slurm.SUCCESS
end
function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
    if job_desc.min_nodes == 0 then job_desc.min_nodes = 1 end
    return slurm.SUCCESS
end
return slurm.SUCCESS
EOF
DBD_CHANGED=0
if [ "$WITH_DBD" = 1 ]; then
    write_if_changed /etc/slurm/slurmdbd.conf 0600 slurm:slurm <<EOF && DBD_CHANGED=1
# written by start_slurm.sh
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
fi
if [ "$CONF_CHANGED" = 1 ]; then
    log "slurm.conf/job_submit.lua written"
    for d in slurmrestd-jwt slurmrestd-local slurmd slurmctld; do stop_recorded $d "config changed, restart"; done
fi
[ "$DBD_CHANGED" = 1 ] && { log "slurmdbd.conf written"; stop_recorded slurmdbd "config changed, restart"; }
if [ "$WITH_DBD" != 1 ]; then
    stop_recorded slurmdbd "SLURM_WITH_DBD=0"; stop_recorded mariadbd "SLURM_WITH_DBD=0"
fi

# ----------------------------------------------------------------- munged ---
if should_start munged /run/munge/munged.pid /usr/sbin/munged; then
    runuser -u munge -- /usr/sbin/munged      # forks into the background itself
    pid=$(wait_pidfile /run/munge/munged.pid 10) || die "munged did not start"
    record munged "$pid" /usr/sbin/munged; log "munged started (pid $pid)"
fi
munge -n | unmunge >/dev/null || die "munge round trip failed"

# ------------------------------------------------------- mariadb/slurmdbd ---
if [ "$WITH_DBD" = 1 ]; then
    install -d -o mysql -g mysql -m 0755 "$DB_RUN"
    if [ ! -d "$DB_DIR/mysql" ]; then
        install -d -o mysql -g mysql -m 0750 "$DB_DIR"
        mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR" \
            --auth-root-authentication-method=socket --skip-test-db >"$STATE_DIR/mariadb-install.log" 2>&1 \
            || die "mariadb-install-db failed (see $STATE_DIR/mariadb-install.log)"
        log "private mariadb datadir initialised in $DB_DIR"
    fi
    if should_start mariadbd "$DB_RUN/mysqld.pid" /usr/sbin/mariadbd; then
        setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DB_DIR" \
            --socket="$DB_RUN/mysqld.sock" --pid-file="$DB_RUN/mysqld.pid" \
            --bind-address=127.0.0.1 --port="$DB_PORT" --log-error="$DB_DIR/error.log" \
            --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900 \
            </dev/null >/dev/null 2>&1 &
        pid=$(wait_pidfile "$DB_RUN/mysqld.pid" 30) || die "mariadbd did not start (see $DB_DIR/error.log)"
        record mariadbd "$pid" /usr/sbin/mariadbd; log "mariadbd started (pid $pid, 127.0.0.1:$DB_PORT)"
    fi
    for ((i = 0; i < 300; i++)); do
        mariadb-admin --no-defaults --socket="$DB_RUN/mysqld.sock" ping >/dev/null 2>&1 && break; sleep 0.1
    done
    mariadb --no-defaults --socket="$DB_RUN/mysqld.sock" -uroot -e "
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" || die "mariadb user setup failed"
    if should_start slurmdbd /run/slurm/slurmdbd.pid /usr/sbin/slurmdbd; then
        /usr/sbin/slurmdbd                     # daemonizes itself
        pid=$(wait_pidfile /run/slurm/slurmdbd.pid 20) || die "slurmdbd did not start"
        record slurmdbd "$pid" /usr/sbin/slurmdbd; log "slurmdbd started (pid $pid)"
    fi
    for ((i = 0; i < 300; i++)); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.1; done
    sacctmgr -n list cluster >/dev/null 2>&1 || die "slurmdbd does not answer (see /var/log/slurm/slurmdbd.log)"
    log "slurmdbd answers"
fi

# -------------------------------------------------------- slurmctld/slurmd ---
if should_start slurmctld /run/slurm/slurmctld.pid /usr/sbin/slurmctld; then
    /usr/sbin/slurmctld                        # daemonizes itself
    pid=$(wait_pidfile /run/slurm/slurmctld.pid 20) || die "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
    record slurmctld "$pid" /usr/sbin/slurmctld; log "slurmctld started (pid $pid)"
fi
for ((i = 0; i < 300; i++)); do scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.1; done
scontrol ping | grep -q 'is UP' || die "slurmctld does not answer"
if should_start slurmd /run/slurm/slurmd.pid /usr/sbin/slurmd; then
    /usr/sbin/slurmd                           # daemonizes itself
    pid=$(wait_pidfile /run/slurm/slurmd.pid 20) || die "slurmd did not start (see /var/log/slurm/slurmd.log)"
    record slurmd "$pid" /usr/sbin/slurmd; log "slurmd started (pid $pid)"
fi

# ------------------------------------------------------------- slurmrestd ---
# slurmrestd refuses to run as root or SlurmUser -> dedicated user. Two
# instances, because local auth breaks when SLURM_JWT=daemon is set:
#   slurmrestd-jwt  : rest_auth/jwt on $RESTD_ADDR (acts as the token's user)
#   slurmrestd-local: rest_auth/local on $RESTD_SOCK (acts as user slurmrestd)
# The openapi/dbv0.0.3x plugins make slurmrestd exit ("slurm not configured
# with slurmdbd") when there is no slurmdbd, so load them only with one.
RESTD_PLUGINS=openapi/v0.0.36,openapi/v0.0.37,openapi/v0.0.38
[ "$WITH_DBD" = 1 ] && RESTD_PLUGINS+=,openapi/dbv0.0.36,openapi/dbv0.0.37,openapi/dbv0.0.38
restd_up() { curl -s -o /dev/null -w '%{http_code}' "$@" 2>/dev/null | grep -qE '^(200|401)$'; }
if [ "$WITH_RESTD" = 1 ]; then
    if should_start slurmrestd-jwt "$RESTD_DIR/jwt.pid" /usr/sbin/slurmrestd; then
        env SLURM_JWT=daemon start-stop-daemon --start --background --make-pidfile \
            --pidfile "$RESTD_DIR/jwt.pid" --chuid slurmrestd:slurmrestd \
            --output "$RESTD_DIR/slurmrestd-jwt.log" \
            --exec /usr/sbin/slurmrestd -- -s "$RESTD_PLUGINS" -a rest_auth/jwt "$RESTD_ADDR"
        pid=$(wait_pidfile "$RESTD_DIR/jwt.pid" 10) || die "slurmrestd (jwt) did not start"
        record slurmrestd-jwt "$pid" /usr/sbin/slurmrestd; log "slurmrestd-jwt started (pid $pid, http://$RESTD_ADDR)"
    fi
    if should_start slurmrestd-local "$RESTD_DIR/local.pid" /usr/sbin/slurmrestd; then
        rm -f "$RESTD_SOCK"
        env -u SLURM_JWT start-stop-daemon --start --background --make-pidfile \
            --pidfile "$RESTD_DIR/local.pid" --chuid slurmrestd:slurmrestd \
            --output "$RESTD_DIR/slurmrestd-local.log" \
            --exec /usr/sbin/slurmrestd -- -s "$RESTD_PLUGINS" -a rest_auth/local "unix:$RESTD_SOCK"
        pid=$(wait_pidfile "$RESTD_DIR/local.pid" 10) || die "slurmrestd (local) did not start"
        record slurmrestd-local "$pid" /usr/sbin/slurmrestd; log "slurmrestd-local started (pid $pid, unix:$RESTD_SOCK)"
    fi
    for ((i = 0; i < 100; i++)); do restd_up "http://$RESTD_ADDR/slurm/v0.0.38/ping" && break; sleep 0.1; done
    restd_up "http://$RESTD_ADDR/slurm/v0.0.38/ping" || die "slurmrestd-jwt does not answer"
    for ((i = 0; i < 100; i++)); do restd_up --unix-socket "$RESTD_SOCK" http://localhost/slurm/v0.0.38/ping && break; sleep 0.1; done
    restd_up --unix-socket "$RESTD_SOCK" http://localhost/slurm/v0.0.38/ping || die "slurmrestd-local does not answer"
fi

# ------------------------------------------------------- wait: node idle ---
state=""
for ((i = 0; i < 600; i++)); do
    state=$(sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -1)
    case "$state" in
        idle | mixed | allocated | completing) break ;;
        down* | drain* | fail* | *drain)
            [ $((i % 50)) = 10 ] && scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.1
done
case "$state" in
    idle | mixed | allocated | completing) ;;
    *) sinfo -R; die "node $NODE is '$state', not idle" ;;
esac
log "ready: node $NODE is $state"
sinfo
