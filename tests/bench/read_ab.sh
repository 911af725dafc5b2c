#!/usr/bin/env bash
# Builds compared on the big-file read path, alternated in the same run so that the machine's
# drift hits them alike: per round and build a fresh `scripts/run.sh` cluster (3 masters, 3
# chunkservers, replication 3), a file of MIB MiB written through the mount, then read cold
# (`dd bs=1M` after dropping the caches) three times; per read the rate and the CPU time the
# chunkservers and the mount spent on it. The file is compared with its source at the end.
#   tests/bench/read_ab.sh ROUNDS BUILD_DIR...
# A build directory holds master/dfs-master, chunk/dfs-chunkserver and fuse/dfs (DFS_BIN of
# scripts/run.sh); keep a copy of an old build to compare it with the current one:
#   mkdir -p /tmp/old && (cd build/release && cp --parents master/dfs-master \
#   chunk/dfs-chunkserver fuse/dfs /tmp/old) && ... && tests/bench/read_ab.sh 3 /tmp/old build/release
# Environment: MIB (default 1024); the cluster's ports are DFS_MASTER_PORTS, DFS_HTTP_PORTS and
# DFS_CS_PORTS of scripts/run.sh (default `make run`'s: stop a running `make run` first).
# Needs root (drop_caches).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 ROUNDS BUILD_DIR..." >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root (drop_caches)" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROUNDS=$1
shift
MIB=${MIB:-1024}
for b in "$@"; do
    for x in master/dfs-master chunk/dfs-chunkserver fuse/dfs; do
        [ -x "$b/$x" ] || { echo "$b/$x: not found" >&2; exit 1; }
    done
done
WORK=$(mktemp -d /var/tmp/dfs-read-ab-XXXXXX)
export DFS_STATE=$WORK/state DFS_MNT=$WORK/mnt
cleanup() {
    "$ROOT/scripts/run.sh" stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# CPU time (clock ticks) of the processes whose command line has $1.
ticks() {
    local t=0 p s
    for p in $(pgrep -f -- "$1"); do
        s=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || continue
        t=$((t + ${s% *} + ${s#* }))
    done
    echo "$t"
}
HZ=$(getconf CLK_TCK)
dd if=/dev/urandom of="$WORK/src" bs=1M count="$MIB" status=none

for r in $(seq "$ROUNDS"); do
    for b in "$@"; do
        rm -rf "$DFS_STATE"
        mkdir -p "$DFS_MNT"
        DFS_BIN=$(cd "$b" && pwd) setsid "$ROOT/scripts/run.sh" >"$WORK/run.log" 2>&1 &
        for _ in $(seq 120); do
            grep -q "Ctrl-C stops the cluster" "$WORK/run.log" 2>/dev/null && break
            sleep 0.5
        done
        mountpoint -q "$DFS_MNT" || { echo "$b: the cluster did not start" >&2; cat "$WORK/run.log" >&2; exit 1; }
        cp "$WORK/src" "$DFS_MNT/big"
        line="round $r $b:"
        for _ in 1 2 3; do
            drop_caches
            c0=$(ticks "--storage-dir $DFS_STATE/cs") m0=$(ticks "$DFS_MNT -f")
            t0=$(date +%s%N)
            dd if="$DFS_MNT/big" of=/dev/null bs=1M status=none
            t1=$(date +%s%N)
            c1=$(ticks "--storage-dir $DFS_STATE/cs") m1=$(ticks "$DFS_MNT -f")
            line="$line $(( MIB * 1000000000 / (t1 - t0) )) MiB/s (chunkservers $(( (c1 - c0) * 1000 / HZ )) ms, mount $(( (m1 - m0) * 1000 / HZ )) ms);"
        done
        cmp -s "$WORK/src" "$DFS_MNT/big" || { echo "$b: the file read back differs" >&2; exit 1; }
        echo "$line"
        "$ROOT/scripts/run.sh" stop >/dev/null 2>&1
        wait || true
    done
done
