#!/usr/bin/env bash
# A local dfs cluster on 127.0.0.1: 3 masters, 3 chunkservers and the FUSE mount at ./mnt.
#
#   scripts/run.sh          (`make run`)    start, wait for a leader and 3 chunkservers, mount,
#                                           then stay in the foreground; Ctrl-C unmounts and
#                                           stops everything. Running it again resumes with
#                                           the data kept in the state directory.
#   scripts/run.sh stop     (`make stop`)   unmount and stop what a detached or crashed run left
#   scripts/run.sh status   (`make status`) each master's role/term/leader, the chunkservers
#
# Environment (all optional):
#   DFS_STATE         state directory: data, logs, pid files (default ./.dfs-local)
#   DFS_MNT           mountpoint (default ./mnt)
#   DFS_BIN           build to run (default build/release)
#   DFS_NO_MOUNT=1    start the cluster without mounting it
#   DFS_MASTER_PORTS  masters' client ports          (default "50051 50052 50053")
#   DFS_HTTP_PORTS    masters' peer/admin http ports (default "8081 8082 8083")
#   DFS_CS_PORTS      chunkservers' ports            (default "7201 7202 7203")
#   DFS_START_TIMEOUT seconds to wait for a leader and the chunkservers (default 30)
# The ports a state directory was first started with are remembered in $DFS_STATE/ports.env and
# used again (the masters keep their peers' URLs from the first start).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SELF=$ROOT/scripts/run.sh

HOST=127.0.0.1
STATE=${DFS_STATE:-$ROOT/.dfs-local}
MNT=${DFS_MNT:-$ROOT/mnt}
BIN=${DFS_BIN:-$ROOT/build/release}
NO_MOUNT=${DFS_NO_MOUNT:-0}
START_TIMEOUT=${DFS_START_TIMEOUT:-30}
MOUNT_TIMEOUT=20 # seconds for the mount to appear
STOP_TIMEOUT=10  # seconds between SIGTERM and SIGKILL

# ---------------------------------------------------------------------------------------------
# Helpers

say() { printf 'dfs: %s\n' "$*"; }
die() {
    printf 'dfs: %s\n' "$*" >&2
    exit 1
}

# Absolute paths, so that messages and the mount do not depend on the current directory.
abspath() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$ROOT/$1" ;; esac }
STATE=$(abspath "$STATE")
MNT=$(abspath "$MNT")
BIN=$(abspath "$BIN")
LOGS=$STATE/logs
PIDS=$STATE/pids
MASTER_BIN=$BIN/master/dfs-master
CS_BIN=$BIN/chunk/dfs-chunkserver
FUSE_BIN=$BIN/fuse/dfs
CTL_BIN=$BIN/client/dfsctl

# Ports: the environment wins, then what this state directory was first started with, then the
# defaults.
load_ports() {
    local saved_m="" saved_h="" saved_c=""
    if [ -f "$STATE/ports.env" ]; then
        saved_m=$(sed -n 's/^MASTER_PORTS=//p' "$STATE/ports.env")
        saved_h=$(sed -n 's/^HTTP_PORTS=//p' "$STATE/ports.env")
        saved_c=$(sed -n 's/^CS_PORTS=//p' "$STATE/ports.env")
    fi
    read -r -a MASTER_PORTS <<<"${DFS_MASTER_PORTS:-${saved_m:-50051 50052 50053}}"
    read -r -a HTTP_PORTS <<<"${DFS_HTTP_PORTS:-${saved_h:-8081 8082 8083}}"
    read -r -a CS_PORTS <<<"${DFS_CS_PORTS:-${saved_c:-7201 7202 7203}}"
    [ ${#MASTER_PORTS[@]} -eq ${#HTTP_PORTS[@]} ] ||
        die "DFS_MASTER_PORTS and DFS_HTTP_PORTS must list as many ports (one per master)"
    [ ${#MASTER_PORTS[@]} -ge 1 ] || die "no master ports"
    NM=${#MASTER_PORTS[@]}
    NCS=${#CS_PORTS[@]}
    MASTERS=""  # 127.0.0.1:50051,127.0.0.1:50052,...  (client addresses)
    ADMINS=""   # http://127.0.0.1:8081,...             (admin/status URLs)
    local i
    for ((i = 0; i < NM; i++)); do
        MASTERS+="${MASTERS:+,}$HOST:${MASTER_PORTS[i]}"
        ADMINS+="${ADMINS:+,}http://$HOST:${HTTP_PORTS[i]}"
    done
    if [ -n "$saved_h" ] && [ "$saved_h" != "${HTTP_PORTS[*]}" ]; then
        say "warning: $STATE was first started with http ports '$saved_h', not '${HTTP_PORTS[*]}';"
        say "         its masters still look for their peers at the old ports"
    fi
}

save_ports() {
    printf 'MASTER_PORTS=%s\nHTTP_PORTS=%s\nCS_PORTS=%s\n' \
        "${MASTER_PORTS[*]}" "${HTTP_PORTS[*]}" "${CS_PORTS[*]}" >"$STATE/ports.env"
}

# json EXPR: evaluates the Python expression EXPR on the JSON document read from stdin (bound to
# d); prints nothing when the input is not JSON or EXPR fails.
json() {
    python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
    v = eval(sys.argv[1])
except Exception:
    sys.exit(0)
print("" if v is None else v)' "$1"
}

# status_of N: GET /status of master N (1-based); empty when it does not answer.
status_of() { curl -s -m 2 "http://$HOST:${HTTP_PORTS[$1 - 1]}/status" 2>/dev/null || true; }

# leader_index: the N of the master that says it is the leader; empty when none does.
leader_index() {
    local i
    for ((i = 1; i <= NM; i++)); do
        if [ "$(status_of "$i" | json 'd["role"]')" = LEADER ]; then
            echo "$i"
            return
        fi
    done
}

# alive_chunkservers N: how many chunkservers master N reports alive.
alive_chunkservers() {
    status_of "$1" | json 'sum(1 for c in d.get("chunkservers", []) if c.get("alive"))'
}

# Process bookkeeping: $PIDS/<name>.pid holds the pid; a pid counts only while that process
# still runs with this run's directory in its arguments (a recycled pid is not ours). Not by the
# program's path: a cluster started with another DFS_BIN is still this state's cluster to stop.
pid_of() {
    local f=$PIDS/$1.pid pid
    [ -f "$f" ] || return 1
    pid=$(cat "$f" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    local cmd state
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || cmd=""
    if [ -z "$cmd" ]; then
        # Empty or unreadable while setsid execs the program (just started), and empty for a
        # zombie (exited).
        state=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$pid/status" 2>/dev/null)
        [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ] || return 1
    else
        [[ $cmd == *"$(args_of "$1") "* ]] || return 1
    fi
    echo "$pid"
}

# args_of NAME: arguments that only this run's process NAME has, as they appear in its
# command line.
args_of() {
    case $1 in
    m* | cs*) echo "--storage-dir $STATE/$1" ;;
    dfs) echo "$MNT -f" ;;
    esac
}

# The processes a run starts, in start order.
procs() {
    local i
    for ((i = 1; i <= NM; i++)); do echo "m$i"; done
    for ((i = 1; i <= NCS; i++)); do echo "cs$i"; done
    echo dfs
}

# running: "name pid" of every process of ours that is alive.
running() {
    local name pid
    while read -r name; do
        if pid=$(pid_of "$name"); then echo "$name $pid"; fi
    done < <(procs)
}

# start NAME PROGRAM ARGS...: runs PROGRAM in the background in its own session (so a Ctrl-C in
# the terminal reaches only this script, which then stops everything in order), logging to
# $LOGS/NAME.log.
start() {
    local name=$1
    shift
    printf '=== %s: %s\n' "$(date '+%F %T')" "$*" >>"$LOGS/$name.log"
    setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
    echo $! >"$PIDS/$name.pid"
}

# log_tail NAME [N]: the last N (20) lines NAME logged in this run (logs are appended to; each
# start writes a "=== date: command" line first).
log_tail() {
    [ -f "$LOGS/$1.log" ] || return 0
    echo "---- $LOGS/$1.log (end):"
    awk '/^=== / { n = 0 } { line[++n] = $0 } END { for (i = 1; i <= n; i++) print line[i] }' \
        "$LOGS/$1.log" | tail -n "${2:-20}"
}

# is_mounted: also true for the stale mount a killed FUSE daemon leaves (which mountpoint(1)
# cannot stat: "Transport endpoint is not connected").
is_mounted() {
    mountpoint -q "$MNT" 2>/dev/null ||
        awk -v m="$MNT" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# unmount: fusermount3 -u, retried for a few seconds (a busy mount frees up when the program
# using it finishes), then a lazy unmount.
unmount() {
    is_mounted || return 0
    say "unmounting $MNT"
    local t
    for ((t = 0; t < 5; t++)); do
        fusermount3 -u "$MNT" 2>/dev/null && return 0
        is_mounted || return 0
        sleep 1
    done
    say "$MNT is busy: lazy unmount"
    fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null ||
        say "warning: could not unmount $MNT (try: fusermount3 -uz $MNT)"
}

# stop_all: unmounts, then SIGTERM to the FUSE daemon, the chunkservers and the masters (in
# that order), waits for each group, SIGKILL after $STOP_TIMEOUT s.
stop_all() {
    unmount
    local group name pid pids live t
    for group in dfs cs m; do
        pids=()
        while read -r name pid; do
            case $name in
            "$group" | "$group"[0-9]*) ;;
            *) continue ;;
            esac
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        done < <(running)
        [ ${#pids[@]} -gt 0 ] || continue
        for ((t = 0; t < STOP_TIMEOUT * 10; t++)); do
            live=0
            for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && live=1; done
            [ $live -eq 1 ] || break
            sleep 0.1
        done
        for pid in "${pids[@]}"; do
            if kill -0 "$pid" 2>/dev/null; then
                say "pid $pid did not stop within ${STOP_TIMEOUT}s: SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
            wait "$pid" 2>/dev/null || true # reaps our own children; no-op for `stop`
        done
    done
    rm -f "$PIDS"/*.pid
}

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# Commands

cmd_stop() {
    load_ports
    local left
    left=$(running)
    if [ -z "$left" ] && ! is_mounted; then
        say "nothing to stop (no live process in $PIDS, $MNT not mounted)"
        rm -f "$PIDS"/*.pid 2>/dev/null || true
        return 0
    fi
    [ -z "$left" ] || say "stopping: $(echo "$left" | tr '\n' ' ')"
    stop_all
    say "stopped"
}

cmd_status() {
    load_ports
    local i out=()
    for ((i = 1; i <= NM; i++)); do out+=("http://$HOST:${HTTP_PORTS[i - 1]}/status" "$(status_of "$i")"); done
    python3 - "$(running | tr '\n' ',')" "${out[@]}" <<'EOF'
import json, sys
procs = dict(p.split() for p in sys.argv[1].split(",") if p)
args = sys.argv[2:]
print("%-4s %-28s %-10s %-6s %-7s %-20s %s" % ("", "admin", "role", "term", "leader", "leader addr", "commit"))
chunk = None
for n, (url, body) in enumerate(zip(args[0::2], args[1::2]), 1):
    try:
        d = json.loads(body)
    except ValueError:
        d = {"role": "DOWN" if not body else "?"}
    print("%-4s %-28s %-10s %-6s %-7s %-20s %s" % ("m%d" % n, url, d.get("role", "?"),
          d.get("term", ""), d.get("leader_id", ""), d.get("leader_addr") or "",
          d.get("commit_index", "")))
    if d.get("role") == "LEADER":
        chunk = d.get("chunkservers", [])
print()
if chunk is None:
    print("no leader: chunkservers unknown")
else:
    print("chunkservers (as the leader sees them):")
    print("  %-20s %-6s %-8s %-12s %-12s %s" % ("addr", "alive", "blocks", "used MiB", "free MiB", "last heartbeat"))
    for c in chunk:
        print("  %-20s %-6s %-8s %-12d %-12d %d ms ago" % (c.get("addr"), "yes" if c.get("alive") else "NO",
              c.get("blocks"), c.get("used", 0) >> 20, c.get("free", 0) >> 20, c.get("last_heartbeat_ms_ago", 0)))
print()
print("processes: " + (", ".join("%s (pid %s)" % kv for kv in procs.items()) or "none of ours running"))
EOF
    if is_mounted; then say "mounted at $MNT"; else say "not mounted at $MNT"; fi
}

cmd_run() {
    # The programs.
    local b
    for b in "$MASTER_BIN" "$CS_BIN"; do
        [ -x "$b" ] || die "$b is not built: run 'make build' (or 'make run')"
    done
    if [ "$NO_MOUNT" != 1 ] && [ ! -x "$FUSE_BIN" ]; then
        say "note: the FUSE daemon $FUSE_BIN is not built in this version: starting the cluster"
        say "      without mounting it (as with DFS_NO_MOUNT=1)"
        NO_MOUNT=1
    fi
    command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
    command -v python3 >/dev/null || die "python3 is needed"

    mkdir -p "$STATE" "$LOGS" "$PIDS"
    load_ports

    # Leftovers of an earlier run.
    local left
    left=$(running)
    if [ -n "$left" ]; then
        say "a previous run is still running: $(echo "$left" | tr '\n' ' ')"
        die "stop it with 'make stop' (scripts/run.sh stop), or see it with 'make status'"
    fi
    if is_mounted; then
        die "$MNT is still mounted (a stale mount of an earlier run?): 'make stop' unmounts it"
    fi
    rm -f "$PIDS"/*.pid
    local p
    for p in "${MASTER_PORTS[@]}" "${HTTP_PORTS[@]}" "${CS_PORTS[@]}"; do
        port_busy "$p" && die "port $p on $HOST is in use by another program (see DFS_*_PORTS in scripts/run.sh)"
    done
    save_ports

    # From here on, any exit stops what was started.
    trap 'trap - INT TERM EXIT; echo; say "stopping"; stop_all; say "stopped"; exit 0' INT TERM
    # shellcheck disable=SC2154 # rc is assigned inside the trap
    trap 'rc=$?; trap - INT TERM EXIT; if [ $rc -ne 0 ]; then stop_all; fi' EXIT

    # Masters. The first start records the configuration from --peers in the master's storage
    # (the ID=URL form skips asking the peers their ids); a restart reads it from there, so the
    # same command line serves both.
    local i j peers
    for ((i = 1; i <= NM; i++)); do
        peers=""
        for ((j = 1; j <= NM; j++)); do
            [ "$j" -eq "$i" ] || peers+="${peers:+,}$j=http://$HOST:${HTTP_PORTS[j - 1]}"
        done
        start "m$i" "$MASTER_BIN" --id "$i" --addr "$HOST:${MASTER_PORTS[i - 1]}" \
            --http-port "${HTTP_PORTS[i - 1]}" --http-bind "$HOST" --peers "$peers" \
            --storage-dir "$STATE/m$i"
    done
    for ((i = 1; i <= NCS; i++)); do
        start "cs$i" "$CS_BIN" --addr "$HOST:${CS_PORTS[i - 1]}" --master-addr "$MASTERS" \
            --storage-dir "$STATE/cs$i" --heartbeat-ms 1000
    done
    say "started $NM masters and $NCS chunkservers; data in $STATE, logs in $LOGS"

    # Wait for a leader, then for every chunkserver to be registered with it.
    local deadline=$((SECONDS + START_TIMEOUT)) leader="" alive=0 name
    while :; do
        while read -r name; do
            [ "$name" = dfs ] && continue
            if ! pid_of "$name" >/dev/null; then
                log_tail "$name"
                die "$name exited during start-up (log: $LOGS/$name.log)"
            fi
        done < <(procs)
        leader=$(leader_index)
        if [ -n "$leader" ]; then
            alive=$(alive_chunkservers "$leader")
            [ "${alive:-0}" -ge "$NCS" ] && break
        fi
        if [ $SECONDS -ge $deadline ]; then
            for ((i = 1; i <= NM; i++)); do log_tail "m$i" 5; done
            for ((i = 1; i <= NCS; i++)); do log_tail "cs$i" 5; done
            if [ -z "$leader" ]; then die "no leader elected within ${START_TIMEOUT}s"; fi
            die "only ${alive:-0} of $NCS chunkservers registered within ${START_TIMEOUT}s"
        fi
        sleep 0.3
    done
    say "leader: m$leader (http://$HOST:${HTTP_PORTS[leader - 1]}); $alive chunkservers alive"

    # The mount.
    if [ "$NO_MOUNT" != 1 ]; then
        mkdir -p "$MNT"
        start dfs "$FUSE_BIN" "$MASTERS" "$MNT" -f
        deadline=$((SECONDS + MOUNT_TIMEOUT))
        until is_mounted; do
            if ! pid_of dfs >/dev/null; then
                log_tail dfs
                die "the FUSE daemon exited before mounting $MNT"
            fi
            if [ $SECONDS -ge $deadline ]; then
                log_tail dfs
                die "$MNT not mounted within ${MOUNT_TIMEOUT}s"
            fi
            sleep 0.2
        done
    fi

    # What is where.
    echo
    echo "  admin status: $(for p in "${HTTP_PORTS[@]}"; do printf ' http://%s:%s/status' "$HOST" "$p"; done)"
    echo "  masters:       $MASTERS"
    echo "  chunkservers: $(for p in "${CS_PORTS[@]}"; do printf ' %s:%s' "$HOST" "$p"; done)"
    if [ "$NO_MOUNT" = 1 ]; then
        echo "  mountpoint:    (not mounted)"
    else
        echo "  mountpoint:    $MNT"
    fi
    echo "  cluster:       ${CTL_BIN#"$ROOT"/} --masters $MASTERS \\"
    echo "                     --admin $ADMINS cluster status"
    [ -x "$CTL_BIN" ] || echo "                 (dfsctl is not built in this version: 'make status' shows the same)"
    echo "  logs:          $LOGS/"
    echo
    echo "Ctrl-C stops the cluster (the data stays in $STATE; 'make run' resumes it)."
    echo "If this terminal goes away, 'make stop' stops what it left."

    # Stay in the foreground; report a process that dies (the rest keeps running). When every
    # one is gone (`make stop` from another terminal), end too.
    local -A reported=()
    while :; do
        sleep 2 &
        wait $! || true
        if [ -z "$(running)" ] && ! is_mounted; then
            say "every process has exited (a 'make stop' elsewhere, or see $LOGS); the data stays in $STATE"
            rm -f "$PIDS"/*.pid
            trap - INT TERM EXIT
            exit 0
        fi
        while read -r name; do
            [ "$name" = dfs ] && [ "$NO_MOUNT" = 1 ] && continue
            if [ -z "${reported[$name]:-}" ] && ! pid_of "$name" >/dev/null; then
                reported[$name]=1
                say "warning: $name has exited (log: $LOGS/$name.log)"
            fi
        done < <(procs)
    done
}

# A shell started in the background by a non-interactive shell (`scripts/run.sh &` in a script)
# inherits SIGINT ignored, and bash cannot trap an ignored signal: start again with SIGINT back
# to its default, so that `kill -INT` stops the cluster as Ctrl-C does.
sigint_ignored() {
    local mask
    mask=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status 2>/dev/null) || return 1
    [ -n "$mask" ] && (((16#$mask >> 1) & 1))
}

case ${1:-run} in
run)
    if sigint_ignored && [ -z "${DFS_RUN_REEXEC:-}" ] && env --default-signal=INT true 2>/dev/null; then
        DFS_RUN_REEXEC=1 exec env --default-signal=INT,QUIT bash "$SELF" "$@"
    fi
    cmd_run
    ;;
stop) cmd_stop ;;
status) cmd_status ;;
-h | --help | help) sed -n '2,21p' "$SELF" | sed 's/^# \{0,1\}//' ;;
*) die "usage: scripts/run.sh [run|stop|status]" ;;
esac
