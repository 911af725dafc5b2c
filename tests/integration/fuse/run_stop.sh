#!/usr/bin/env bash
# `make run` and `make stop` as a user runs them (scripts/run.sh, two terminals): a cluster
# started from one build is stopped by `stop` with another DFS_BIN (the state directory names
# the cluster, not the binaries' path), nothing of it is left running or mounted, and the
# foreground run ends by itself. Environment: SRC (source tree), BIN (the build to run), T (an
# empty scratch directory), PORTS (nine free ports: masters' client and http, chunkservers').
set -euo pipefail
read -r p1 p2 p3 h1 h2 h3 c1 c2 c3 <<<"$PORTS"
export DFS_STATE=$T/state DFS_MNT=$T/mnt DFS_START_TIMEOUT=120
export DFS_MASTER_PORTS="$p1 $p2 $p3" DFS_HTTP_PORTS="$h1 $h2 $h3" DFS_CS_PORTS="$c1 $c2 $c3"
fail() { echo "run_stop.sh: $*" >&2; tail -n 30 "$T/run.log" >&2; exit 1; }

DFS_BIN=$BIN "$SRC/scripts/run.sh" >"$T/run.log" 2>&1 &
run=$!
# Whatever happens, the foreground run does not outlive the test (Ctrl-C stops its cluster).
trap 'kill -INT $run 2>/dev/null && wait $run 2>/dev/null; true' EXIT
# Up to 3 minutes (sanitizer builds start slowly) for the run to say it is up, as a user waits
# for it: the mount alone is not enough (the run checks for it every 0.2 s).
for _ in $(seq 900); do
    grep -q "^Ctrl-C stops the cluster" "$T/run.log" && break
    kill -0 $run 2>/dev/null || fail "the run ended before it was up"
    sleep 0.2
done
grep -q "^Ctrl-C stops the cluster" "$T/run.log" || fail "not up"
mountpoint -q "$T/mnt" || fail "not mounted"
echo hello >"$T/mnt/f"
[ "$(cat "$T/mnt/f")" = hello ] || fail "cannot read back a file"

DFS_BIN=$T/another-build "$SRC/scripts/run.sh" stop >"$T/stop.log" 2>&1 ||
    fail "stop failed: $(cat "$T/stop.log")"
grep -q "^dfs: stopped" "$T/stop.log" || fail "stop found nothing to stop: $(cat "$T/stop.log")"
! mountpoint -q "$T/mnt" || fail "still mounted after stop"
! pgrep -f -- "--storage-dir $T/state/" >/dev/null || fail "daemons left: $(pgrep -af -- "--storage-dir $T/state/")"

for _ in $(seq 50); do # the foreground run notices within its 2 s poll
    kill -0 $run 2>/dev/null || break
    sleep 0.2
done
kill -0 $run 2>/dev/null && { kill -INT $run; fail "the foreground run went on after stop"; }
wait $run || fail "the foreground run ended with status $?"
grep -q "every process has exited" "$T/run.log" || fail "the run did not say why it ended"
