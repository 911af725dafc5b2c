#!/usr/bin/env bash
# Committed writes per second and latency: 3 dfs-masters vs 3 etcd 3.4 members, same machine,
# same run, same load generator (tests/bench/bench_kv.c), 1 and 32 concurrent clients; then
# dfs's committed namespace operations (file creates through the client API, tests/bench/
# bench_fs.c, each committed on a majority and fsynced) against the etcd put rate just measured.
#   tests/bench/master_vs_etcd.sh [BUILD_DIR] [SECONDS]
# ROUNDS (env, default 1): with more, each concurrency runs ROUNDS rounds of dfs puts, etcd puts,
# dfs creates, one after the other (the machine's speed drifts by 10-20% within a minute), and
# each ratio is of the medians.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build/release}
SECS=${2:-10}
ROUNDS=${ROUNDS:-1}
MASTER=$BUILD/master/dfs-master
BENCH=$BUILD/tests/bench/bench_kv
BENCH_FS=$BUILD/tests/bench/bench_fs
[ -x "$MASTER" ] && [ -x "$BENCH" ] && [ -x "$BENCH_FS" ] || { echo "build first: make build" >&2; exit 1; }
if ! command -v etcd >/dev/null; then
    echo "installing etcd-server (Debian) for the comparison" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server etcd-client >/dev/null
fi

ROOT=$(mktemp -d /tmp/dfs-bench-XXXXXX)
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$ROOT"; }
trap cleanup EXIT

# dfs: 3 masters
for i in 1 2 3; do
    peers=""
    for j in 1 2 3; do [ $j = $i ] || peers="$peers${peers:+,}http://127.0.0.1:1808$j"; done
    "$MASTER" --id $i --addr 127.0.0.1:1905$i --http-port 1808$i --http-bind 127.0.0.1 \
        --peers "$peers" --storage-dir "$ROOT/m$i" --log-level warn 2>"$ROOT/m$i.log" &
    PIDS+=($!)
done
# etcd: 3 members
CL="e1=http://127.0.0.1:1218,e2=http://127.0.0.1:1228,e3=http://127.0.0.1:1238"
for i in 1 2 3; do
    etcd --name e$i --data-dir "$ROOT/e$i" \
        --listen-client-urls http://127.0.0.1:12${i}79 --advertise-client-urls http://127.0.0.1:12${i}79 \
        --listen-peer-urls http://127.0.0.1:12${i}8 --initial-advertise-peer-urls http://127.0.0.1:12${i}8 \
        --initial-cluster "$CL" --initial-cluster-state new --log-level error \
        >"$ROOT/e$i.log" 2>&1 &
    PIDS+=($!)
done
sleep 3
# etcd's leader (puts go to it, as with dfs)
ETCD_LEADER=""
for i in 1 2 3; do
    if ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:12${i}79 endpoint status -w fields 2>/dev/null \
        | grep -q '"IsLeader" : true'; then
        ETCD_LEADER=http://127.0.0.1:12${i}79
    fi
done
ETCD_LEADER=${ETCD_LEADER:-http://127.0.0.1:12179}
DFS_URLS=http://127.0.0.1:19051,http://127.0.0.1:19052,http://127.0.0.1:19053

rate() { sed -n 's/.*"puts_per_s":\([0-9.]*\).*/\1/p; s/.*creates\/s= *\([0-9.]*\).*/\1/p'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "# committed puts (${SECS}s, 64 B values) and file creates, $ROUNDS round(s) ($(date -u +%F))"
for c in 1 32; do
    files=$((c == 1 ? 3000 : 500))
    dk="" ek="" df=""
    for _ in $(seq "$ROUNDS"); do
        d=$("$BENCH" --target dfs --url "$DFS_URLS" --clients $c --seconds "$SECS" --json)
        e=$("$BENCH" --target etcd --url "$ETCD_LEADER" --clients $c --seconds "$SECS" --json)
        f=$("$BENCH_FS" --url "$DFS_URLS" --clients $c --files-per-client $files)
        printf '%s\n%s\n%s\n' "$d" "$e" "$f"
        dk="$dk $(echo "$d" | rate)" ek="$ek $(echo "$e" | rate)" df="$df $(echo "$f" | rate)"
    done
    awk -v d="$(median <<<"$dk")" -v e="$(median <<<"$ek")" -v f="$(median <<<"$df")" -v c="$c" \
        'BEGIN { printf "clients=%d  puts/s dfs %.1f etcd %.1f: dfs/etcd = %.2fx;  dfs creates/s %.1f: creates/etcd puts = %.2fx\n", c, d, e, d / e, f, f / e }'
done
