#!/usr/bin/env bash
# End-to-end test of deploy/: builds the image, starts deploy/docker-compose.yml as compose
# project "dfstest", writes files through the FUSE mount of the client container, stops the Raft
# leader's container, writes more while it is down, checks that another master took over, starts
# the old leader again and verifies every file by SHA-256 through a fresh mount; then removes the
# containers, network and volumes (on every exit path).
#
#   deploy/compose-test.sh          as root (or with a running Docker engine you may use)
#
# What it does to the host, and undoes:
#   - installs docker.io, docker-compose and debootstrap when missing (`scripts/deps.sh docker`);
#   - starts dockerd when none runs, with --iptables=false --ip-forward=false so that the host's
#     firewall (the FORWARD policy) and sysctls stay as they are, and stops it at exit, restoring
#     the FORWARD policy, ip_forward and removing docker0 should they have changed anyway;
#   - makes debian:bookworm-slim with debootstrap when it cannot be pulled (deploy/base-image.sh);
#     it, dfs:latest and the build stage dfs:build are kept, so the next run is faster;
#   - publishes the masters' ports on 127.0.0.1 at ports Docker picks, so that it does not
#     collide with `make run` (50051-50053, 8081-8083) or anything else on the host.
#
# Environment (all optional):
#   DFS_COMPOSE_PROJECT  compose project name (default dfstest)
#   DFS_TEST_LOGS        directory for logs (default: a new /tmp/dfs-compose-test.XXXXXX)
#   DFS_SMALL_FILES      small files written in each phase (default 150; 4 phases)
#   DFS_BIG_MIB          size of the big file written in each phase (default 4)
#   DFS_KEEP=1           leave the cluster (and a dockerd this test started) running after a
#                        success (`docker-compose -p dfstest down -v` removes the cluster)
#   DFS_BASE             base image (default debian:bookworm-slim)
#   DFS_IMAGE            the image built and run (default dfs:latest)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PROJECT=${DFS_COMPOSE_PROJECT:-dfstest}
SMALL=${DFS_SMALL_FILES:-150}
BIG_MIB=${DFS_BIG_MIB:-4}
KEEP=${DFS_KEEP:-0}
export DFS_BASE=${DFS_BASE:-debian:bookworm-slim}
export DFS_IMAGE=${DFS_IMAGE:-dfs:latest}
LOGS=${DFS_TEST_LOGS:-$(mktemp -d /tmp/dfs-compose-test.XXXXXX)}
mkdir -p "$LOGS"
# Docker picks free host ports for the masters (see deploy/docker-compose.yml).
export DFS_MASTER1_PORT='' DFS_MASTER2_PORT='' DFS_MASTER3_PORT=''
export DFS_MASTER1_HTTP_PORT='' DFS_MASTER2_HTTP_PORT='' DFS_MASTER3_HTTP_PORT=''
export DFS_BIND=127.0.0.1
# The legacy builder where no buildx plugin is installed (the CLI would refuse BuildKit).
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0

T0=$SECONDS
say() { printf '[compose-test %4ds] %s\n' $((SECONDS - T0)) "$*"; }
fail() {
    printf '[compose-test %4ds] FAILED: %s\n' $((SECONDS - T0)) "$*" >&2
    exit 1
}
dc() { docker-compose -p "$PROJECT" -f "$ROOT/deploy/docker-compose.yml" "$@"; }
# cexec CMD...: runs CMD in the client container (stdin passed through, no tty).
cexec() { dc exec -T client "$@"; }

# ---------------------------------------------------------------------------------------------
# Cleanup, on every exit path.

STARTED_DOCKERD=0
DOCKERD_PID=""
FORWARD_POLICY=""
IP_FORWARD=""
HAD_DOCKER0=0
HAD_NETNS_MOUNT=0
CLUSTER_UP=0

stop_dockerd() {
    [ "$STARTED_DOCKERD" = 1 ] || return 0
    if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
        say "stopping the dockerd this test started (pid $DOCKERD_PID)"
        kill -TERM "$DOCKERD_PID" 2>/dev/null || true
        local t
        for ((t = 0; t < 60; t++)); do
            kill -0 "$DOCKERD_PID" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$DOCKERD_PID" 2>/dev/null; then
            say "dockerd did not stop within 30 s: SIGKILL"
            kill -KILL "$DOCKERD_PID" 2>/dev/null || true
        fi
    fi
    # What a dockerd changes on the host, should ours have done it despite its flags.
    if [ -n "$FORWARD_POLICY" ] && command -v iptables >/dev/null; then
        local now
        now=$(iptables -S FORWARD 2>/dev/null | sed -n 's/^-P FORWARD //p')
        if [ -n "$now" ] && [ "$now" != "$FORWARD_POLICY" ]; then
            say "restoring the iptables FORWARD policy to $FORWARD_POLICY (was set to $now)"
            iptables -P FORWARD "$FORWARD_POLICY" || true
        fi
    fi
    if [ -n "$IP_FORWARD" ] && [ "$(cat /proc/sys/net/ipv4/ip_forward)" != "$IP_FORWARD" ]; then
        say "restoring net.ipv4.ip_forward to $IP_FORWARD"
        echo "$IP_FORWARD" >/proc/sys/net/ipv4/ip_forward || true
    fi
    if [ "$HAD_DOCKER0" = 0 ] && ip link show docker0 >/dev/null 2>&1; then
        ip link delete docker0 2>/dev/null || true
    fi
    # dockerd bind-mounts the host's network namespace there and leaves it mounted.
    if [ "$HAD_NETNS_MOUNT" = 0 ] && mountpoint -q /run/docker/netns/default 2>/dev/null; then
        umount /run/docker/netns/default 2>/dev/null || true
    fi
    STARTED_DOCKERD=0
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ "$CLUSTER_UP" = 1 ]; then
        dc logs --no-color --timestamps >"$LOGS/compose.log" 2>&1
        if [ "$rc" -ne 0 ]; then
            echo "---- docker-compose ps:"
            dc ps 2>&1
            echo "---- the last lines of each service (all in $LOGS/compose.log):"
            dc logs --no-color --tail=15 2>&1
        fi
        if [ "$KEEP" = 1 ] && [ "$rc" -eq 0 ]; then
            say "DFS_KEEP=1: the cluster keeps running (docker-compose -p $PROJECT down -v removes it)"
            [ "$STARTED_DOCKERD" != 1 ] || say "DFS_KEEP=1: so does dockerd (pid $DOCKERD_PID)"
        else
            say "tearing down (docker-compose -p $PROJECT down -v)"
            dc down -v --remove-orphans >>"$LOGS/down.log" 2>&1 ||
                say "warning: down failed (see $LOGS/down.log)"
        fi
    fi
    # Dangling images of earlier builds of this Dockerfile (the tagged dfs:build, dfs:latest and
    # the base image stay).
    if docker info >/dev/null 2>&1; then
        docker image prune -f --filter label=org.dfs.image >/dev/null 2>&1
    fi
    if [ "$KEEP" != 1 ] || [ "$rc" -ne 0 ]; then stop_dockerd; fi
    if [ "$rc" -eq 0 ]; then
        say "PASSED in $((SECONDS - T0)) s (logs in $LOGS)"
        echo "compose-test: 1 passed, 0 failed"
    else
        say "FAILED after $((SECONDS - T0)) s (exit $rc; logs in $LOGS)"
        echo "compose-test: 0 passed, 1 failed"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# The tools, the engine, the images.

say "logs in $LOGS"
if [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null; then
    "$ROOT/scripts/deps.sh" docker
fi
for tool in docker docker-compose curl python3; do
    command -v "$tool" >/dev/null || fail "$tool is missing (scripts/deps.sh docker installs it)"
done

if docker info >/dev/null 2>&1; then
    say "using the running Docker engine"
else
    [ "$(id -u)" -eq 0 ] || fail "no Docker engine runs, and starting one needs root"
    command -v dockerd >/dev/null || fail "dockerd is missing (scripts/deps.sh docker installs it)"
    if command -v iptables >/dev/null; then
        FORWARD_POLICY=$(iptables -S FORWARD 2>/dev/null | sed -n 's/^-P FORWARD //p')
    fi
    IP_FORWARD=$(cat /proc/sys/net/ipv4/ip_forward)
    ip link show docker0 >/dev/null 2>&1 && HAD_DOCKER0=1
    mountpoint -q /run/docker/netns/default 2>/dev/null && HAD_NETNS_MOUNT=1
    say "starting dockerd (log: $LOGS/dockerd.log)"
    STARTED_DOCKERD=1
    # Its own session: a Ctrl-C reaches this script, which then tears down in order.
    setsid dockerd --iptables=false --ip-forward=false </dev/null >"$LOGS/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for ((t = 0; t < 120; t++)); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$DOCKERD_PID" 2>/dev/null || {
            tail -n 20 "$LOGS/dockerd.log" >&2
            fail "dockerd exited at start-up"
        }
        sleep 0.5
    done
    docker info >/dev/null 2>&1 || {
        tail -n 20 "$LOGS/dockerd.log" >&2
        fail "dockerd did not answer within 60 s"
    }
    say "dockerd is up (pid $DOCKERD_PID)"
fi

# Containers named as ours but belonging to another project would make `up` fail.
others=$(docker ps -a --format '{{.Names}} {{.Label "com.docker.compose.project"}}' |
    awk -v p="$PROJECT" '$1 ~ /^dfs-(master[0-9]+|chunkserver[0-9]+|client)$/ && $2 != p')
[ -z "$others" ] || fail "containers with this cluster's names belong to another project: $others"
dc config -q || fail "deploy/docker-compose.yml is not valid"
# What an interrupted earlier run may have left.
dc down -v --remove-orphans >"$LOGS/down-before.log" 2>&1 || true

"$ROOT/deploy/base-image.sh" "$DFS_BASE" 2>&1 | sed 's/^/    /'
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "no base image $DFS_BASE"

# The build stage is tagged so that its layers (the -dev packages above all) stay cached: the
# prune at exit removes only untagged images of this Dockerfile.
say "building the build stage dfs:build (log: $LOGS/build.log)"
build_start=$SECONDS
docker build --network host --build-arg BASE="$DFS_BASE" -f deploy/Dockerfile --target build \
    -t dfs:build . >"$LOGS/build.log" 2>&1 || {
    tail -n 30 "$LOGS/build.log" >&2
    fail "docker build --target build failed"
}
# The same build context as above (docker-compose's own build would send it differently and
# miss the cache of the compiled stage).
say "building $DFS_IMAGE"
docker build --network host --build-arg BASE="$DFS_BASE" -f deploy/Dockerfile -t "$DFS_IMAGE" . \
    >>"$LOGS/build.log" 2>&1 || {
    tail -n 30 "$LOGS/build.log" >&2
    fail "docker build failed"
}
say "images built in $((SECONDS - build_start)) s"

# ---------------------------------------------------------------------------------------------
# The cluster.

say "starting the cluster (docker-compose -p $PROJECT up -d)"
CLUSTER_UP=1
dc up -d --no-build >"$LOGS/up.log" 2>&1 || {
    cat "$LOGS/up.log" >&2
    fail "docker-compose up failed"
}

SERVICES="master1 master2 master3 chunkserver1 chunkserver2 chunkserver3 chunkserver4 client"
# wait_healthy TIMEOUT: every service's container healthy.
wait_healthy() {
    local deadline=$((SECONDS + $1)) states bad
    while :; do
        states=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" |
            xargs -r docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' 2>/dev/null)
        bad=$(for s in $SERVICES; do
            h=$(printf '%s\n' "$states" | awk -v s="$s" '$1 == s { print $2 }')
            [ "$h" = healthy ] || printf ' %s:%s' "$s" "${h:-missing}"
        done)
        [ -z "$bad" ] && return 0
        [ $SECONDS -lt $deadline ] || fail "not healthy within $1 s:$bad"
        sleep 2
    done
}

# view: one line per master, "N ROLE TERM LEADER_ID COMMIT_INDEX LIVE_CHUNKSERVERS" from its
# /status, asked from the client container over the compose network ("N DOWN 0 0 0 0" when it
# does not answer).
view() {
    # shellcheck disable=SC2016 # expanded by the container's shell
    cexec sh -c 'for i in 1 2 3; do printf "%s " $i; curl -s -m 2 http://dfs-master$i:8080/status | tr -d "\n"; echo; done' \
        </dev/null 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    n, _, body = line.strip().partition(" ")
    try:
        d = json.loads(body)
        live = sum(1 for c in d.get("chunkservers", []) if c.get("alive"))
        print(n, d["role"], d["term"], d.get("leader_id") or 0, d["commit_index"], live)
    except Exception:
        print(n, "DOWN", 0, 0, 0, 0)'
}
# leader: "ID TERM LIVE_CHUNKSERVERS" of the master that says it is the leader; empty when none.
leader() { view | awk '$2 == "LEADER" { print $1, $3, $6; exit }'; }

wait_healthy 180
say "all 8 containers healthy"

deadline=$((SECONDS + 60))
while :; do
    read -r LEADER LTERM LIVE < <(leader; echo) || true
    if [ -n "$LEADER" ] && [ "$LIVE" = 4 ]; then break; fi
    [ $SECONDS -lt $deadline ] || fail "no leader with 4 live chunkservers within 60 s"
    sleep 1
done
say "leader: master$LEADER (term $LTERM), 4 chunkservers alive"

# ---------------------------------------------------------------------------------------------
# Data: each phase makes files in the client container's /tmp (SMALL small files of assorted
# sizes, one big file), records their SHA-256 here, and copies them into /mnt/dfs/PHASE.

MANIFEST=$LOGS/sha256.txt
: >"$MANIFEST"
make_phase() { # PHASE
    # shellcheck disable=SC2016 # expanded by the container's shell
    cexec sh -c '
        set -e
        d=/tmp/gen/$1
        rm -rf "$d" && mkdir -p "$d/small/sub"
        i=1
        while [ $i -le $2 ]; do
            f=$d/small/f$i; [ $((i % 5)) -eq 0 ] && f=$d/small/sub/f$i
            head -c $(( (i * 7919) % 20000 + 1 )) /dev/urandom >"$f"
            i=$((i + 1))
        done
        head -c $(($3 * 1048576 + 12345)) /dev/urandom >"$d/big.bin"
        cd /tmp/gen && find "$1" -type f | sort | xargs sha256sum' sh "$1" "$SMALL" "$BIG_MIB" \
        </dev/null >>"$MANIFEST" || fail "could not make the files of $1"
}
copy_phase() { # PHASE: copies it into the mount
    cexec cp -r "/tmp/gen/$1" "/mnt/dfs/$1" </dev/null
}

say "phase 1: writing $SMALL small files and a ${BIG_MIB} MiB file through the mount"
make_phase p1
copy_phase p1 || fail "writing p1 failed"
say "phase 1 written ($(wc -l <"$MANIFEST") files)"

# Phase 2 is copied file by file, paced (about 10 s in all), and the leader's container is
# stopped once the copy is under way, so that the stop falls in the middle of it.
make_phase p2
say "phase 2: copying file by file; master$LEADER (the leader) is stopped meanwhile"
# shellcheck disable=SC2016 # expanded by the container's shell
cexec sh -c 'set -e; cd /tmp/gen
    find p2 -type d | sort | while read -r d; do mkdir -p "/mnt/dfs/$d"; done
    find p2 -type f | sort | while read -r f; do cp "$f" "/mnt/dfs/$f"; sleep 0.05; done' \
    </dev/null >"$LOGS/p2.log" 2>&1 &
COPY_PID=$!
deadline=$((SECONDS + 30))
until [ "$(cexec sh -c 'find /mnt/dfs/p2 -type f 2>/dev/null | wc -l' </dev/null)" -ge 20 ]; do
    kill -0 "$COPY_PID" 2>/dev/null || break
    [ $SECONDS -lt $deadline ] || fail "the phase 2 copy did not get going within 30 s"
    sleep 0.3
done
OLD_LEADER=$LEADER
OLD_TERM=$LTERM
dc stop "master$OLD_LEADER" >>"$LOGS/stop.log" 2>&1 || fail "docker-compose stop master$OLD_LEADER failed"
if kill -0 "$COPY_PID" 2>/dev/null; then
    say "master$OLD_LEADER stopped, the copy goes on"
else
    say "master$OLD_LEADER stopped (note: the copy had finished already)"
fi
wait "$COPY_PID" || {
    cat "$LOGS/p2.log" >&2
    fail "the copy during the leader's stop failed"
}
say "phase 2 written"

deadline=$((SECONDS + 30))
while :; do
    read -r LEADER LTERM LIVE < <(leader; echo) || true
    if [ -n "$LEADER" ] && [ "$LEADER" != "$OLD_LEADER" ] && [ "$LTERM" -gt "$OLD_TERM" ]; then break; fi
    [ $SECONDS -lt $deadline ] || fail "no new leader within 30 s of stopping master$OLD_LEADER"
    sleep 1
done
say "new leader: master$LEADER (term $LTERM; was master$OLD_LEADER, term $OLD_TERM)"

say "phase 3: writing with master$OLD_LEADER down"
make_phase p3
copy_phase p3 || fail "writing p3 failed"

say "starting master$OLD_LEADER again"
dc start "master$OLD_LEADER" >>"$LOGS/stop.log" 2>&1 || fail "docker-compose start master$OLD_LEADER failed"
deadline=$((SECONDS + 60))
while :; do
    # Back as a follower of the current leader, with everything it had committed.
    rejoined=$(view | awk -v o="$OLD_LEADER" '
        $2 == "LEADER" { l = $1; c = $5 }
        $1 == o { role = $2; term = $3; lid = $4; oc = $5 }
        END { if (role == "FOLLOWER" && lid == l && oc >= c) print lid, term }')
    [ -z "$rejoined" ] || break
    [ $SECONDS -lt $deadline ] || fail "master$OLD_LEADER did not rejoin as an up-to-date follower within 60 s"
    sleep 1
done
read -r now_leader now_term <<<"$rejoined"
say "master$OLD_LEADER is back, following master$now_leader (term $now_term) with its commits"

say "phase 4: writing with all three masters"
make_phase p4
copy_phase p4 || fail "writing p4 failed"

# ---------------------------------------------------------------------------------------------
# Verification, through a fresh mount (no page cache of the writes): restart the client.

say "restarting the client container (a fresh mount reads everything from the chunkservers)"
dc restart client >>"$LOGS/stop.log" 2>&1 || fail "docker-compose restart client failed"
wait_healthy 60
expected=$(wc -l <"$MANIFEST")
found=$(cexec sh -c 'cd /mnt/dfs && find p1 p2 p3 p4 -type f | wc -l' </dev/null) ||
    fail "cannot list /mnt/dfs"
[ "$found" -eq "$expected" ] || fail "/mnt/dfs holds $found files, $expected were written"
cexec sh -c 'cd /mnt/dfs && sha256sum -c --quiet -' <"$MANIFEST" >"$LOGS/verify.log" 2>&1 || {
    head -n 20 "$LOGS/verify.log" >&2
    fail "checksums differ (see $LOGS/verify.log)"
}
say "all $expected files verified by SHA-256 ($(awk '{ print $2 }' "$MANIFEST" | grep -c big.bin) big ones)"

fsck=$(cexec dfsctl fsck / </dev/null 2>&1) || {
    printf '%s\n' "$fsck" | tail -n 20 >&2
    fail "dfsctl fsck / reports missing blocks"
}
say "dfsctl fsck /: $(printf '%s\n' "$fsck" | sed -n 's/^Status: //p') ($(printf '%s\n' "$fsck" | sed -n 's/^ *Files: \([0-9]*\).*/\1/p') files)"

# The leader change as the logs tell it.
dc logs --no-color master1 master2 master3 2>/dev/null | grep 'becoming LEADER' >"$LOGS/leaders.log" || true
sed 's/^/    /' "$LOGS/leaders.log"
grep -q "Node $OLD_LEADER becoming LEADER (term $OLD_TERM)" "$LOGS/leaders.log" ||
    fail "the logs do not show master$OLD_LEADER becoming leader in term $OLD_TERM"
grep -q "Node $LEADER becoming LEADER (term $LTERM)" "$LOGS/leaders.log" ||
    fail "the logs do not show master$LEADER becoming leader in term $LTERM"
say "the logs show the leader change: master$OLD_LEADER (term $OLD_TERM) -> master$LEADER (term $LTERM)"
