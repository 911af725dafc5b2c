#!/usr/bin/env bash
# The dfs mount against a minimal passthrough FUSE filesystem and a local directory, both on the
# same disk, in the same run: sequential write and read of a big file, create/stat/unlink of many
# small files, and cp -r of a tree of small files. The local directory is the physical limit; the
# passthrough (libfuse's own passthrough_ll example, compiled on the fly by tests/bench/
# passthrough.sh, which says how and with which options it is mounted) is what any FUSE mount
# costs on top of it. Starts its own cluster (3 masters, 3 chunkservers, replication 3) with
# scripts/run.sh (127.0.0.1, ports 160xx/162xx). Needs root for drop_caches (without it the
# reads are not cold).
#   tests/bench/fuse_vs_local.sh [BUILD_DIR] [BIG_MIB] [FILES] [TREE_FILES]
# Prints one line per metric: the rates of dfs, the passthrough and local, then dfs/local and
# dfs/passthrough (ratios of the rates: above 1, dfs is faster).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build/release}
BIG_MIB=${2:-1024}
FILES=${3:-5000}
TREE=${4:-2000}
[ -x "$BUILD/fuse/dfs" ] || { echo "build first: make build" >&2; exit 1; }
ROOT=$(mktemp -d /var/tmp/dfs-bench-XXXXXX)
MNT=$ROOT/mnt
LOCAL=$ROOT/local
mkdir -p "$MNT" "$LOCAL"
. tests/bench/passthrough.sh
RUN_PID=
cleanup() {
    set +e
    pt_stop
    [ -n "$RUN_PID" ] && kill -INT "$RUN_PID" 2>/dev/null && wait "$RUN_PID" 2>/dev/null || true
    if pt_mounted || mountpoint -q "$MNT"; then
        echo "a mount is still active under $ROOT; not removing it" >&2
    else
        rm -rf "$ROOT"
    fi
}
trap cleanup EXIT
pt_build "$ROOT/pt"
pt_mount "$ROOT/pt-backing" "$ROOT/pt-mnt" "$ROOT/pt.log"

DFS_STATE=$ROOT/state DFS_MNT=$MNT DFS_BIN=$BUILD DFS_MASTER_PORTS="16051 16052 16053" \
    DFS_HTTP_PORTS="16081 16082 16083" DFS_CS_PORTS="16201 16202 16203" \
    scripts/run.sh >"$ROOT/run.log" 2>&1 &
RUN_PID=$!
for _ in $(seq 600); do mountpoint -q "$MNT" && break; sleep 0.1; done
mountpoint -q "$MNT" || { cat "$ROOT/run.log"; exit 1; }

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
secs() { local t0 t1; t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'; }

# Small files through one process, so that fork/exec costs do not hide the filesystem's. Timed
# inside python (python's start-up is not the filesystem's); prints the seconds taken.
small_files() { # DIR OP
    python3 - "$1" "$2" "$FILES" <<'PY'
import os, sys, time
d, op, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = b"x" * 4096
t0 = time.monotonic()
for i in range(n):
    p = os.path.join(d, "f%d" % i)
    if op == "create":
        fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
        os.write(fd, data)
        os.close(fd)
    elif op == "stat":
        os.stat(p)
    else:
        os.unlink(p)
print(time.monotonic() - t0)
PY
}

make_tree() { # DIR: TREE files of 1-16 KiB in directories of 50
    python3 - "$1" "$TREE" <<'PY'
import os, random, sys
d, n = sys.argv[1], int(sys.argv[2])
random.seed(1)
for i in range(n):
    sub = os.path.join(d, "d%d" % (i // 50))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%d" % i), "wb") as f:
        f.write(os.urandom(random.randint(1024, 16384)))
PY
}

SRC=$ROOT/src
make_tree "$SRC"
head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$ROOT/big.src"

declare -A R
run_all() { # NAME DIR
    local n=$1 d=$2
    drop_caches
    R[$n.write]=$(secs dd if="$ROOT/big.src" of="$d/big" bs=1M conv=fsync status=none)
    drop_caches
    R[$n.read]=$(secs dd if="$d/big" of=/dev/null bs=1M status=none)
    rm -f "$d/big"
    mkdir "$d/small"
    R[$n.create]=$(small_files "$d/small" create)
    R[$n.stat]=$(small_files "$d/small" stat)
    R[$n.unlink]=$(small_files "$d/small" unlink)
    R[$n.cp]=$(secs cp -r "$SRC" "$d/tree")
    sync
}
run_all dfs "$MNT"
run_all fuse "$PT_MNT"
run_all local "$LOCAL"

echo "dfs: 3 masters + 3 chunkservers, replication 3; passthrough: libfuse $(pkg-config --modversion fuse3)" \
    "passthrough_ll over a directory of $(df --output=source "$LOCAL" | tail -1), as is local"
printf '%-28s %12s %12s %12s %10s %16s\n' metric dfs passthrough local dfs/local dfs/passthrough
rate() { # METRIC AMOUNT UNIT
    awk -v m="$1 ($3)" -v n="$2" -v d="${R[dfs.$1]}" -v p="${R[fuse.$1]}" -v l="${R[local.$1]}" \
        'BEGIN { printf "%-28s %12.1f %12.1f %12.1f %10.2f %16.2f\n", m, n / d, n / p, n / l, l / d, p / d }'
}
rate write "$BIG_MIB" "MiB/s, ${BIG_MIB} MiB"
rate read "$BIG_MIB" "MiB/s, cold"
rate create "$FILES" "files/s, 4 KiB"
rate stat "$FILES" "stats/s"
rate unlink "$FILES" "unlinks/s"
rate cp "$TREE" "files/s, cp -r"
