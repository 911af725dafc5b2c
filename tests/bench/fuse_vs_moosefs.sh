#!/usr/bin/env bash
# The dfs mount against a MooseFS mount, a minimal passthrough FUSE filesystem and a local
# directory, all on the same disk, in the same run: sequential write and cold read of a big file;
# create (+4 KiB write) / stat / rename / unlink of many small files from one process and from
# WORKERS processes; cp -r of a tree of small files.
#   tests/bench/fuse_vs_moosefs.sh [BUILD_DIR] [BIG_MIB] [FILES] [TREE_FILES]
# Environment (arguments win): BUILD_DIR (build/release), BIG_MIB (1024), FILES (5000),
# TREE_FILES (2000), WORKERS (8), RUNS (1: with more, each figure is the median of the runs),
# MFS_FSYNC_BEFORE_CLOSE (0, MooseFS's default: its chunkservers do not fsync a chunk when a file
# is closed, while dfs's close() returns once the data is fsynced on its chunkservers; 1 makes
# MooseFS fsync too), PT_EXAMPLES (where passthrough_ll.c is: see tests/bench/passthrough.sh).
# Quick run: tests/bench/fuse_vs_moosefs.sh build/release 64 500 500
#
# dfs: 3 masters, 3 chunkservers, replication 3, started with scripts/run.sh (127.0.0.1, ports
# 164xx/166xx). MooseFS 3.0 (Debian packages, not installed by this script): 1 master and 3
# chunkservers with goal 3 and trash time 0, all in a network namespace of its own whose loopback
# carries 192.0.2.1 (chunkservers refuse a master on 127.0.0.0/8), entered with nsenter --net so
# that mfsmount's FUSE mount is visible outside it. Every daemon runs at nice 0. Passthrough:
# libfuse's own passthrough_ll example over a directory of the same disk, what any FUSE mount
# costs (compiled on the fly and mounted by tests/bench/passthrough.sh, which says how). Each
# workload runs on dfs, MooseFS, the passthrough and local in turn before the next one starts, so
# that load from other work on the machine hits the four alike. Needs root (network namespace,
# mounts, drop_caches).
# Prints one line per metric: the rates of dfs, MooseFS, the passthrough and local, then
# dfs/MooseFS and dfs/passthrough (ratios of the rates: above 1, dfs is faster).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-${BUILD_DIR:-build/release}}
BIG_MIB=${2:-${BIG_MIB:-1024}}
FILES=${3:-${FILES:-5000}}
TREE=${4:-${TREE_FILES:-2000}}
WORKERS=${WORKERS:-8}
RUNS=${RUNS:-1}
MFS_FSYNC=${MFS_FSYNC_BEFORE_CLOSE:-0}

[ "$(id -u)" = 0 ] || { echo "run as root (network namespace, mounts, drop_caches)" >&2; exit 1; }
[ -x "$BUILD/fuse/dfs" ] || { echo "build first: make build" >&2; exit 1; }
missing=()
for p in moosefs-master moosefs-chunkserver moosefs-client moosefs-cli; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "MooseFS is missing; install it with: apt-get install ${missing[*]}" >&2
    exit 1
fi
for t in nsenter ip mountpoint python3 dd gcc pkg-config fusermount3; do
    command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }
done

DFS_MASTER_PORTS="16451 16452 16453"
DFS_HTTP_PORTS="16481 16482 16483"
DFS_CS_PORTS="16601 16602 16603"
for port in $DFS_MASTER_PORTS $DFS_HTTP_PORTS $DFS_CS_PORTS; do
    if ss -Hltn "sport = :$port" | grep -q .; then
        echo "port $port is in use (another run of this script?)" >&2
        exit 1
    fi
done

MFS_IP=192.0.2.1
NS=dfsbench-mfs-$$
NSPATH=/var/run/netns/$NS
ROOT=$(mktemp -d /var/tmp/dfs-vs-mfs-XXXXXX)
MNT=$ROOT/dfs-mnt
MMNT=$ROOT/mfs-mnt
LOCAL=$ROOT/local
mkdir -p "$MNT" "$MMNT" "$LOCAL"
. tests/bench/passthrough.sh
RUN_PID=
MFSMOUNT_PID=
MFS_CS_PIDS=()
MFS_MASTER_PID=
NS_MADE=

stop_pid() { # PID [SIGNAL]: signal one process we started, wait up to 20 s, then SIGKILL it
    local pid=$1 sig=${2:-TERM}
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -"$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    set +e
    pt_stop
    if mountpoint -q "$MMNT"; then
        umount "$MMNT" 2>/dev/null || fusermount -u "$MMNT" 2>/dev/null || umount -l "$MMNT"
    fi
    stop_pid "$MFSMOUNT_PID"
    for pid in "${MFS_CS_PIDS[@]}"; do stop_pid "$pid"; done
    stop_pid "$MFS_MASTER_PID"
    [ -n "$NS_MADE" ] && ip netns delete "$NS"
    stop_pid "$RUN_PID" INT # run.sh unmounts dfs and stops its daemons
    if mountpoint -q "$MNT" || mountpoint -q "$MMNT" || pt_mounted; then
        echo "a mount is still active under $ROOT; not removing it" >&2
    else
        rm -rf "$ROOT"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- dfs ----------------------------------------------------------------------------------------
DFS_STATE=$ROOT/dfs-state DFS_MNT=$MNT DFS_BIN=$BUILD DFS_MASTER_PORTS="$DFS_MASTER_PORTS" \
    DFS_HTTP_PORTS="$DFS_HTTP_PORTS" DFS_CS_PORTS="$DFS_CS_PORTS" \
    scripts/run.sh >"$ROOT/dfs-run.log" 2>&1 &
RUN_PID=$!

# --- the passthrough reference (libfuse's passthrough_ll example) ------------------------------
pt_build "$ROOT/pt"
pt_mount "$ROOT/pt-backing" "$ROOT/pt-mnt" "$ROOT/pt.log"

# --- MooseFS ------------------------------------------------------------------------------------
ip netns add "$NS"
NS_MADE=1
ip -n "$NS" link set lo up
ip -n "$NS" addr add "$MFS_IP/32" dev lo
in_ns() { nsenter --net="$NSPATH" "$@"; }

M=$ROOT/mfs
mkdir -p "$M/master"
cp /var/lib/mfs/metadata.mfs.empty "$M/master/metadata.mfs"
echo "*  /  rw,alldirs,maproot=0:0" >"$M/mfsexports.cfg"
cat >"$M/mfsmaster.cfg" <<EOF
WORKING_USER = root
WORKING_GROUP = root
NICE_LEVEL = 0
DATA_PATH = $M/master
EXPORTS_FILENAME = $M/mfsexports.cfg
TOPOLOGY_FILENAME = $M/mfstopology.cfg
REPLICATIONS_DELAY_INIT = 0
EOF
: >"$M/mfstopology.cfg"
# Started straight from nsenter (which execs them), so that $! is the daemon's own pid.
nsenter --net="$NSPATH" mfsmaster -f -c "$M/mfsmaster.cfg" start >"$M/master.log" 2>&1 &
MFS_MASTER_PID=$!
for i in 1 2 3; do
    mkdir -p "$M/cs$i/data" "$M/cs$i/hdd"
    echo "$M/cs$i/hdd" >"$M/cs$i/mfshdd.cfg"
    cat >"$M/cs$i/mfschunkserver.cfg" <<EOF
WORKING_USER = root
WORKING_GROUP = root
NICE_LEVEL = 0
DATA_PATH = $M/cs$i/data
HDD_CONF_FILENAME = $M/cs$i/mfshdd.cfg
MASTER_HOST = $MFS_IP
BIND_HOST = $MFS_IP
CSSERV_LISTEN_HOST = $MFS_IP
CSSERV_LISTEN_PORT = $((9422 + 10 * i))
HDD_FSYNC_BEFORE_CLOSE = $MFS_FSYNC
EOF
done
for _ in $(seq 100); do in_ns bash -c "exec 3<>/dev/tcp/$MFS_IP/9420" 2>/dev/null && break; sleep 0.1; done
for i in 1 2 3; do
    nsenter --net="$NSPATH" mfschunkserver -f -c "$M/cs$i/mfschunkserver.cfg" start >"$M/cs$i.log" 2>&1 &
    MFS_CS_PIDS+=($!)
done
# Wait until the master knows all 3 chunkservers, so that new chunks get their 3 copies at once.
cs_up=0
for _ in $(seq 300); do
    cs_up=$(in_ns mfscli -H "$MFS_IP" -SCS -s '|' 2>/dev/null | grep -c "|$MFS_IP|" || true)
    [ "$cs_up" -ge 3 ] && break
    sleep 0.2
done
if [ "$cs_up" -lt 3 ]; then
    echo "MooseFS: only $cs_up chunkservers registered" >&2
    tail -n 20 "$M"/*.log >&2
    exit 1
fi
nsenter --net="$NSPATH" mfsmount "$MMNT" -f -H "$MFS_IP" -o mfsnice=0 >"$M/mount.log" 2>&1 &
MFSMOUNT_PID=$!
for _ in $(seq 300); do mountpoint -q "$MMNT" && break; sleep 0.1; done
mountpoint -q "$MMNT" || { echo "mfsmount failed" >&2; cat "$M/mount.log" >&2; exit 1; }
in_ns mfssetgoal -r 3 "$MMNT" >/dev/null
in_ns mfssettrashtime -r 0 "$MMNT" >/dev/null

for _ in $(seq 600); do mountpoint -q "$MNT" && break; sleep 0.1; done
mountpoint -q "$MNT" || { echo "dfs mount failed" >&2; cat "$ROOT/dfs-run.log" >&2; exit 1; }

# --- workloads (as in fuse_vs_local.sh) ---------------------------------------------------------
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
secs() { local t0 t1; t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'; }

# Small files in python, so that fork/exec costs do not hide the filesystem's. With W > 1, W
# forked processes each take their share of the N files in a subdirectory of their own; they
# start together and the time runs until the last one is done. Prints the seconds taken.
small_files() { # DIR OP W
    python3 - "$1" "$2" "$FILES" "$3" <<'PY'
import os, sys, time, multiprocessing as mp
d, op, n, w = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = b"x" * 4096
def work(sub, lo, hi):
    for i in range(lo, hi):
        p = os.path.join(sub, "f%d" % i)
        if op == "create":
            fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
            os.write(fd, data)
            os.close(fd)
        elif op == "stat":
            os.stat(p)
        elif op == "rename":
            os.rename(p, os.path.join(sub, "g%d" % i))
        else:
            os.unlink(os.path.join(sub, "g%d" % i))
def worker(k, start):
    sub = os.path.join(d, "w%d" % k)
    if op == "create":
        os.makedirs(sub, exist_ok=True)
    start.wait()
    work(sub, k * n // w, (k + 1) * n // w)
if w == 1:
    t0 = time.monotonic()
    work(d, 0, n)
else:
    ctx = mp.get_context("fork")
    start = ctx.Barrier(w + 1)
    ps = [ctx.Process(target=worker, args=(k, start)) for k in range(w)]
    for p in ps:
        p.start()
    start.wait()
    t0 = time.monotonic()
    for p in ps:
        p.join()
    if any(p.exitcode != 0 for p in ps):
        sys.exit(1)
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

SYSTEMS="dfs mfs fuse local"
declare -A DIR=([dfs]=$MNT [mfs]=$MMNT [fuse]=$PT_MNT [local]=$LOCAL)
declare -A R # SYSTEM.METRIC -> seconds of each run, space-separated
add() { R[$1.$2]="${R[$1.$2]:-} $3"; }

for _ in $(seq "$RUNS"); do
    for s in $SYSTEMS; do
        drop_caches
        add "$s" write "$(secs dd if="$ROOT/big.src" of="${DIR[$s]}/big" bs=1M conv=fsync status=none)"
    done
    copies=$(in_ns mfscheckfile "$MMNT/big" | grep -Eo 'with [0-9]+ cop' | sort -u | tr '\n' ' ')
    [ "$copies" = "with 3 cop " ] || echo "warning: MooseFS chunks of the big file: $copies" >&2
    for s in $SYSTEMS; do
        drop_caches
        add "$s" read "$(secs dd if="${DIR[$s]}/big" of=/dev/null bs=1M status=none)"
        rm -f "${DIR[$s]}/big"
    done
    for w in 1 "$WORKERS"; do
        for s in $SYSTEMS; do mkdir "${DIR[$s]}/small$w"; done
        for op in create stat rename unlink; do
            for s in $SYSTEMS; do
                drop_caches
                add "$s" "$op$w" "$(small_files "${DIR[$s]}/small$w" $op "$w")"
            done
        done
        for s in $SYSTEMS; do rm -rf "${DIR[$s]}/small$w"; done
    done
    for s in $SYSTEMS; do
        drop_caches
        cat "$SRC"/*/* >/dev/null # the source tree in the page cache, for all four alike
        add "$s" cp "$(secs cp -r "$SRC" "${DIR[$s]}/tree")"
        rm -rf "${DIR[$s]}/tree"
    done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "dfs: 3 masters + 3 chunkservers, replication 3; MooseFS 3.0: 1 master + 3 chunkservers," \
    "goal 3, HDD_FSYNC_BEFORE_CLOSE=$MFS_FSYNC; passthrough: libfuse $(pkg-config --modversion fuse3)" \
    "passthrough_ll; local: $(df --output=source "$LOCAL" | tail -1) (same disk); runs: $RUNS"
printf '%-34s %10s %10s %12s %10s %12s %16s\n' metric dfs MooseFS passthrough local dfs/MooseFS dfs/passthrough
rate() { # METRIC AMOUNT LABEL
    awk -v m="$3" -v n="$2" -v d="$(median <<<"${R[dfs.$1]}")" -v f="$(median <<<"${R[mfs.$1]}")" \
        -v p="$(median <<<"${R[fuse.$1]}")" -v l="$(median <<<"${R[local.$1]}")" \
        'BEGIN { printf "%-34s %10.1f %10.1f %12.1f %10.1f %12.2f %16.2f\n", m, n / d, n / f, n / p, n / l, f / d, p / d }'
}
rate write "$BIG_MIB" "write MiB/s (${BIG_MIB} MiB, fsync)"
rate read "$BIG_MIB" "read MiB/s (cold)"
for w in 1 "$WORKERS"; do
    rate "create$w" "$FILES" "create+4KiB files/s ($w proc)"
    rate "stat$w" "$FILES" "stat/s, cold ($w proc)"
    rate "rename$w" "$FILES" "rename/s ($w proc)"
    rate "unlink$w" "$FILES" "unlink/s ($w proc)"
done
rate cp "$TREE" "cp -r files/s ($TREE files)"
