#!/usr/bin/env bash
# Builds of dfs-master compared on committed writes, alternated in the same run so that the
# machine's drift hits them alike: per round and build 3 fresh masters on loopback, then
# `bench_kv` with 1 and with 32 clients (SECONDS each). Per run: puts/s and p50 from bench_kv,
# and over the three masters, per commit: CPU time (utime + stime of every thread), context
# switches (voluntary and not) and the requests the followers sent to the leader (their
# /status `messages_sent`; a follower's replies should ride in the answers to the leader's
# appends, so this stays near 0).
#   tests/bench/master_ab.sh ROUNDS BUILD_DIR...
# A build directory holds master/dfs-master; bench_kv comes from the first one. To compare an
# old build with the current one:
#   mkdir -p /tmp/old && (cd build/release && cp --parents master/dfs-master \
#   tests/bench/bench_kv /tmp/old) && ... && tests/bench/master_ab.sh 3 /tmp/old build/release
# Environment: SECONDS_EACH (default 5), CLIENTS (default "1 32"). Ports 18181-18183 (peers and
# /status) and 19151-19153 (clients).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 ROUNDS BUILD_DIR..." >&2; exit 2; }
ROUNDS=$1
shift
SECS=${SECONDS_EACH:-5}
CLIENTS=${CLIENTS:-1 32}
BENCH=$1/tests/bench/bench_kv
for b in "$@"; do
    [ -x "$b/master/dfs-master" ] || { echo "$b/master/dfs-master: not found" >&2; exit 1; }
done
[ -x "$BENCH" ] || { echo "$BENCH: not found" >&2; exit 1; }
ROOT=$(mktemp -d /tmp/dfs-master-ab-XXXXXX)
PIDS=()
stop() {
    [ ${#PIDS[@]} -eq 0 ] || kill "${PIDS[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    PIDS=()
}
trap 'stop; rm -rf "$ROOT"' EXIT
URLS=http://127.0.0.1:19151,http://127.0.0.1:19152,http://127.0.0.1:19153
TICK=$(getconf CLK_TCK)

status() { curl -sf "http://127.0.0.1:1818$1/status"; }
leader() {
    local s
    for i in 1 2 3; do
        s=$(status $i) || continue
        if [[ $s == *'"role":"LEADER"'* ]]; then echo $i; return; fi
    done
}
commit_index() { status "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["commit_index"])'; }
# CPU ticks and context switches of every thread of the three masters: "TICKS SWITCHES"
usage() {
    for p in "${PIDS[@]}"; do
        for t in /proc/$p/task/*; do
            awk '{print $14 + $15}' "$t/stat"
            awk '/ctxt_switches/ {s += $2} END {print s}' "$t/status"
        done
    done | awk 'NR % 2 {c += $1; next} {s += $1} END {print c, s}'
}
# Requests the followers sent to leader $1, summed.
follower_requests() {
    for i in 1 2 3; do
        [ "$i" = "$1" ] && continue
        status $i | python3 -c "import json,sys; print(sum(p['messages_sent'] for p in json.load(sys.stdin)['peers'] if p['id'] == $1))"
    done | awk '{s += $1} END {print s}'
}

start() {
    rm -rf "$ROOT/m" && mkdir -p "$ROOT/m"
    for i in 1 2 3; do
        peers=""
        for j in 1 2 3; do [ $j = $i ] || peers="$peers${peers:+,}http://127.0.0.1:1818$j"; done
        "$1/master/dfs-master" --id $i --addr 127.0.0.1:1915$i --http-port 1818$i \
            --http-bind 127.0.0.1 --peers "$peers" --storage-dir "$ROOT/m/$i" --log-level warn \
            2>>"$ROOT/m$i.log" &
        PIDS+=($!)
    done
    for _ in $(seq 100); do
        [ -n "$(leader)" ] && return
        sleep 0.1
    done
    echo "no leader within 10 s (logs: $ROOT/m*.log)" >&2
    exit 1
}

echo "# $(date -u '+%F %H:%M') dfs-master A/B: $ROUNDS round(s), ${SECS}s per run, clients: $CLIENTS"
printf '%-28s %7s %10s %8s %10s %10s %12s\n' build clients puts/s p50_ms cpu_us/op switch/op fol_req/op
for r in $(seq "$ROUNDS"); do
    for b in "$@"; do
        start "$b"
        for c in $CLIENTS; do
            L=$(leader)
            read -r t0 s0 < <(usage)
            c0=$(commit_index "$L")
            f0=$(follower_requests "$L")
            out=$("$BENCH" --target dfs --url "$URLS" --clients "$c" --seconds "$SECS" --json)
            c1=$(commit_index "$L")
            f1=$(follower_requests "$L")
            read -r t1 s1 < <(usage)
            n=$((c1 - c0))
            [ "$n" -gt 0 ] || { echo "no commits: $out" >&2; exit 1; }
            echo "$out" | python3 -c "
import json, sys
d = json.load(sys.stdin)
print('%-28s %7d %10.1f %8.3f %10.0f %10.1f %12.3f' % ('$b'[-28:], $c, d['puts_per_s'], d['p50_ms'],
      ($t1 - $t0) * 1e6 / $TICK / $n, ($s1 - $s0) / $n, ($f1 - $f0) / $n))"
        done
        stop
    done
done
