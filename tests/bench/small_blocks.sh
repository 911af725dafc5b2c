#!/usr/bin/env bash
# Small blocks through the 3-chunkserver pipeline (client -> cs1 -> cs2 -> cs3, all on this one
# disk): 4 KiB PUTs from 1 and from 8 keep-alive clients, with the small-block journal (the
# default) and without it (--journal-size 0: each copy's file and directory fsynced), in the same
# run. Prints blocks/s, p50 and p99 per case and the ratios journal/no journal.
#
# Usage: tests/bench/small_blocks.sh   (uses build/release; `make build` first)
#   DFS_CHUNKSERVER=path  BENCH_DIR=/dir/on/the/disk  N1=1500 (PUTs, 1 client)  N8=300 (per client)
#   SIZE=4096
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${DFS_CHUNKSERVER:-build/release/chunk/dfs-chunkserver}
BASE=${BENCH_DIR:-$PWD/build}
PORT0=${PORT0:-17400}
N1=${N1:-1500}
N8=${N8:-300}
SIZE=${SIZE:-4096}

[ -x "$BIN" ] || { echo "no $BIN: run 'make build' or set DFS_CHUNKSERVER" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 2; }
mkdir -p "$BASE"
DIR=$(mktemp -d "$BASE/small-blocks.XXXXXX")
PIDS=()
stop_all() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
}
trap 'stop_all; [ -n "${KEEP:-}" ] || rm -rf "$DIR"' EXIT

start() { # $1: case name, $2: --journal-size
    mkdir -p "$DIR/$1"
    for i in 1 2 3; do
        "$BIN" --addr "127.0.0.1:$((PORT0 + i))" --master-addr 127.0.0.1:1 \
            --storage-dir "$DIR/$1/cs$i" --journal-size "$2" --scrub-rate 0 \
            --log-level warn 2>"$DIR/$1-cs$i.log" &
        PIDS+=($!)
    done
    for i in 1 2 3; do
        for _ in $(seq 100); do
            curl -sf "http://127.0.0.1:$((PORT0 + i))/status" >/dev/null && break
            sleep 0.05
        done
    done
}

# Prints "blocks/s p50_ms p99_ms" for $1 clients sending $2 PUTs each, ids from $3.
load() {
    python3 - "$PORT0" "$1" "$2" "$3" "$SIZE" <<'EOF'
import http.client, os, sys, threading, time
port0, clients, n, first, size = map(int, sys.argv[1:])
data = os.urandom(size)
pipe = "127.0.0.1:%d,127.0.0.1:%d" % (port0 + 2, port0 + 3)
lat, errs = [], []
def run(c):
    conn = http.client.HTTPConnection("127.0.0.1", port0 + 1)
    mine = []
    for i in range(n):
        bid = "%016x" % (first + c * n + i)
        t = time.perf_counter()
        conn.request("PUT", "/blocks/" + bid, body=data, headers={"X-Dfs-Pipeline": pipe})
        r = conn.getresponse()
        body = r.read()
        mine.append(time.perf_counter() - t)
        if r.status != 200 or b'"failed":[]' not in body:
            errs.append(body[:200])
    lat.extend(mine)
ts = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
t0 = time.perf_counter()
for t in ts: t.start()
for t in ts: t.join()
wall = time.perf_counter() - t0
if errs:
    sys.exit("failed PUTs: %d, first: %r" % (len(errs), errs[0]))
lat.sort()
print("%.0f %.2f %.2f" % (len(lat) / wall, lat[len(lat) // 2] * 1e3, lat[len(lat) * 99 // 100] * 1e3))
EOF
}

echo "small blocks ($SIZE bytes) through a 3-chunkserver pipeline on one disk: $(df -h "$DIR" | awk 'NR==2 { print $1 }'), $(nproc) cores"
declare -A R
for mode in journal nojournal; do
    if [ $mode = journal ]; then start $mode 64M; else start $mode 0; fi
    load 1 20 1000000 >/dev/null # warm-up: connections, directories, the journal's first use
    R[$mode.1]=$(load 1 "$N1" 1)
    R[$mode.8]=$(load 8 "$N8" 100000)
    if [ $mode = journal ]; then
        syncs=$(curl -sf "http://127.0.0.1:$((PORT0 + 1))/metrics" | awk '$1 == "dfs_cs_journal_syncs_total" { print $2 }')
        recs=$(curl -sf "http://127.0.0.1:$((PORT0 + 1))/metrics" | awk '$1 == "dfs_cs_journal_blocks_total" { print $2 }')
        echo "cs1 journal: $recs blocks, $syncs syncs"
    fi
    stop_all
done
printf '%-10s %-18s %-18s %s\n' clients "journal b/s p50 p99" "no journal" "ratio (b/s)"
for c in 1 8; do
    read -r jr jp jq <<<"${R[journal.$c]}"
    read -r nr np nq <<<"${R[nojournal.$c]}"
    printf '%-10s %-18s %-18s %s\n' "$c" "$jr ${jp}ms ${jq}ms" "$nr ${np}ms ${nq}ms" \
        "$(awk -v a="$jr" -v b="$nr" 'BEGIN { printf "%.2fx", a / b }')"
done
