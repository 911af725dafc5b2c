#!/usr/bin/env bash
# Leader failover time: 3 dfs-masters; N times, kill -9 the leader and measure from the kill until
# a write is committed again (the client tries every master, following no cache). Prints each
# time and the median and worst.   tests/bench/failover.sh [BUILD_DIR] [KILLS]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build/release}
KILLS=${2:-20}
MASTER=$BUILD/master/dfs-master
[ -x "$MASTER" ] || { echo "build first: make build" >&2; exit 1; }
ROOT=$(mktemp -d /tmp/dfs-failover-XXXXXX)
declare -A PID
start() {
    local i=$1 peers=""
    for j in 1 2 3; do [ "$j" = "$i" ] || peers="$peers${peers:+,}http://127.0.0.1:1708$j"; done
    "$MASTER" --id "$i" --addr "127.0.0.1:1705$i" --http-port "1708$i" --http-bind 127.0.0.1 \
        --peers "$peers" --storage-dir "$ROOT/m$i" --log-level warn 2>>"$ROOT/m$i.log" &
    PID[$i]=$!
}
cleanup() { for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$ROOT"; }
trap cleanup EXIT
now_ms() { date +%s%3N; }
SEQ=0
put_once() { # tries each master once; 0 when one committed the write
    SEQ=$((SEQ + 1))
    for j in 1 2 3; do
        if curl -sf -m 1 -X POST "http://127.0.0.1:1705$j/v1/kv/put" \
            -d "{\"key\":\"k\",\"value\":\"$SEQ\",\"client\":\"failover\",\"seq\":$SEQ}" >/dev/null 2>&1; then
            return 0
        fi
    done
    return 1
}
leader() {
    for j in 1 2 3; do
        l=$(curl -s -m 1 "http://127.0.0.1:1708$j/status" 2>/dev/null | sed -n 's/.*"leader_id":\([0-9]*\).*/\1/p')
        [ -n "$l" ] && [ "$l" != 0 ] && { echo "$l"; return; }
    done
}
for i in 1 2 3; do start "$i"; done
until put_once; do sleep 0.1; done
times=()
for k in $(seq 1 "$KILLS"); do
    l=$(leader)
    kill -9 "${PID[$l]}"; wait "${PID[$l]}" 2>/dev/null || true
    t0=$(now_ms)
    until put_once; do :; done
    t=$(( $(now_ms) - t0 ))
    times+=("$t")
    echo "kill $k: leader $l, writes again after $t ms"
    start "$l"
    sleep 1
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}')
worst=$(echo "$sorted" | tail -1)
echo "failover over $KILLS kills: median $median ms, worst $worst ms"
