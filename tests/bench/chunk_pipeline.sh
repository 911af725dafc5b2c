#!/usr/bin/env bash
# Chunkserver pipeline benchmark: three dfs-chunkservers on this host (one disk), SIZE_MB of
# data written as BLOCK_MB blocks through the replication pipeline (client -> cs1 -> cs2 -> cs3,
# three copies, each fsynced), compared in the same run with dd writing the same amount once with
# fsync to the same disk; then the blocks read back (from cs1, then from cs3).
#
# Three copies on one disk can reach at most about 1/3 of dd's rate.
#
# Usage: tests/bench/chunk_pipeline.sh                 (uses build/release; `make build` first)
#   DFS_CHUNKSERVER=path/to/dfs-chunkserver  BENCH_DIR=/dir/on/the/disk  SIZE_MB=1024
#   BLOCK_MB=64  COLD=1 (drop the page cache before reading; needs root, affects the host)
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${DFS_CHUNKSERVER:-build/release/chunk/dfs-chunkserver}
SIZE_MB=${SIZE_MB:-1024}
BLOCK_MB=${BLOCK_MB:-64}
BASE=${BENCH_DIR:-$PWD/build}
PORT0=${PORT0:-17300}
NBLOCKS=$((SIZE_MB / BLOCK_MB))

[ -x "$BIN" ] || { echo "no $BIN: run 'make build' or set DFS_CHUNKSERVER" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl is required" >&2; exit 2; }
mkdir -p "$BASE"
DIR=$(mktemp -d "$BASE/chunk-bench.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

now() { date +%s.%N; }
rate() { awk -v mb="$1" -v t0="$2" -v t1="$3" 'BEGIN { printf "%.1f MB/s (%.2f s)", mb / (t1 - t0), t1 - t0 }'; }

echo "dfs chunkserver pipeline benchmark: $SIZE_MB MiB in $NBLOCKS blocks of $BLOCK_MB MiB"
echo "disk: $(df -h "$DIR" | awk 'NR==2 { print $1 " (" $2 ", " $4 " free)" }'), $(nproc) cores"

head -c $((BLOCK_MB * 1024 * 1024)) /dev/urandom >"$DIR/block.bin"

# Baselines: one copy, written and fsynced by dd; zeros (as asked) and random bytes (what the
# chunkservers get: some virtual disks store zeros faster).
t0=$(now)
dd if=/dev/zero of="$DIR/dd.out" bs=1M count="$SIZE_MB" conv=fsync status=none
t1=$(now)
echo "dd zeros (1 copy, fsync):      $(rate "$SIZE_MB" "$t0" "$t1")"
rm -f "$DIR/dd.out"
sync
t0=$(now)
for _ in $(seq "$NBLOCKS"); do cat "$DIR/block.bin"; done |
    dd of="$DIR/dd.out" bs=1M iflag=fullblock conv=fsync status=none
t1=$(now)
echo "dd random (1 copy, fsync):     $(rate "$SIZE_MB" "$t0" "$t1")"
rm -f "$DIR/dd.out"
sync

# A fake master is not needed for data: the masters' address only has to parse.
for i in 1 2 3; do
    "$BIN" --addr "127.0.0.1:$((PORT0 + i))" --master-addr 127.0.0.1:1 \
        --storage-dir "$DIR/cs$i" --block-size "${BLOCK_MB}M" --scrub-rate 0 \
        --log-level warn 2>"$DIR/cs$i.log" &
    PIDS+=($!)
done
for i in 1 2 3; do
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$((PORT0 + i))/status" >/dev/null && break
        sleep 0.05
    done
done

PIPE="127.0.0.1:$((PORT0 + 2)),127.0.0.1:$((PORT0 + 3))"

put_all() { # $1: first id, $2: pipeline ("" for none)
    for b in $(seq 0 $((NBLOCKS - 1))); do
        id=$(printf '%016x' $(($1 + b)))
        out=$(curl -sS -T "$DIR/block.bin" -H "X-Dfs-Pipeline: $2" \
            "http://127.0.0.1:$((PORT0 + 1))/blocks/$id")
        case "$out" in
        *'"failed":[]'*) ;;
        *) echo "PUT $id failed: $out" >&2; exit 1 ;;
        esac
    done
}

t0=$(now)
put_all 1 "$PIPE"
t1=$(now)
echo "pipeline write (3 copies):     $(rate "$SIZE_MB" "$t0" "$t1")  [disk: $((3 * SIZE_MB)) MiB]"

t0=$(now)
put_all 100000 ""
t1=$(now)
echo "single write (1 copy):         $(rate "$SIZE_MB" "$t0" "$t1")"

read_all() { # $1: port
    for b in $(seq 0 $((NBLOCKS - 1))); do
        id=$(printf '%016x' $((1 + b)))
        curl -sSf -o /dev/null "http://127.0.0.1:$1/blocks/$id"
    done
}

if [ "${COLD:-0}" = 1 ]; then
    sync
    echo 3 >/proc/sys/vm/drop_caches
    t0=$(now)
    read_all $((PORT0 + 1))
    t1=$(now)
    echo "read, cold cache (cs1):        $(rate "$SIZE_MB" "$t0" "$t1")"
fi
t0=$(now)
read_all $((PORT0 + 1))
t1=$(now)
echo "read, warm cache (cs1):        $(rate "$SIZE_MB" "$t0" "$t1")"
t0=$(now)
read_all $((PORT0 + 3))
t1=$(now)
echo "read (cs3):                    $(rate "$SIZE_MB" "$t0" "$t1")"

# Every copy is byte-identical.
want=$(sha256sum <"$DIR/block.bin" | cut -d' ' -f1)
for i in 1 2 3; do
    got=$(curl -sSf "http://127.0.0.1:$((PORT0 + i))/blocks/$(printf '%016x' "$NBLOCKS")" |
        sha256sum | cut -d' ' -f1)
    [ "$got" = "$want" ] || { echo "cs$i returned different bytes" >&2; exit 1; }
done
echo "copies verified identical on cs1, cs2, cs3"
