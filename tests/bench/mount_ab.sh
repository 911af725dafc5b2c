#!/usr/bin/env bash
# Two mounts of one cluster compared on small files, alternated in the same run so that the
# machine's drift hits both alike: create (+4 KiB) / cold stat / rename / unlink of FILES files
# from one python process, then from 8 processes each in a directory of its own; per workload the
# rate on each mount and the masters' reads and proposals per operation (from /metrics).
#   tests/bench/mount_ab.sh MOUNT_A MOUNT_B [FILES] [ROUNDS]
# Environment: HTTP_PORTS (the masters' http ports, default "8081 8082 8083": `make run`'s).
# Example, the directory cache on and off (`make run` mounted at ./mnt):
#   mkdir -p /tmp/nocache && build/release/fuse/dfs 127.0.0.1:50051,127.0.0.1:50052,\
#   127.0.0.1:50053 /tmp/nocache -o dir_cache=0 && tests/bench/mount_ab.sh /tmp/nocache mnt
# Needs root (drop_caches before each workload).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 MOUNT_A MOUNT_B [FILES] [ROUNDS]" >&2; exit 2; }
A=$1 B=$2 FILES=${3:-2000} ROUNDS=${4:-2}
PORTS=${HTTP_PORTS:-8081 8082 8083}
[ "$(id -u)" = 0 ] || { echo "run as root (drop_caches)" >&2; exit 1; }
for m in "$A" "$B"; do mountpoint -q "$m" || { echo "$m is not mounted" >&2; exit 1; }; done

for r in $(seq "$ROUNDS"); do
    for m in "$A" "$B"; do
        for w in 1 8; do
            python3 - "$m" "$FILES" "$w" "$PORTS" "$r" <<'PY'
import os, sys, time, urllib.request, multiprocessing as mp
mnt, n, w, ports, rnd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(), sys.argv[5]
def counters():
    c = {"reads": 0.0, "proposals": 0.0}
    for p in ports:
        try:
            text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % p, timeout=5).read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("dfs_raft_reads_fast_total "):
                c["reads"] += float(line.split()[1])
            elif line.startswith("dfs_raft_proposals_total "):
                c["proposals"] += float(line.split()[1])
    return c
top = os.path.join(mnt, "ab.%d" % os.getpid())
os.mkdir(top)
data = b"x" * 4096
def work(op, k):
    d = os.path.join(top, "w%d" % k)
    for i in range(k * n // w, (k + 1) * n // w):
        p = os.path.join(d, "f%d" % i)
        if op == "create":
            with open(p, "wb") as f:
                f.write(data)
        elif op == "stat":
            os.stat(p)
        elif op == "rename":
            os.rename(p, os.path.join(d, "g%d" % i))
        else:
            os.unlink(os.path.join(d, "g%d" % i))
for k in range(w):
    os.mkdir(os.path.join(top, "w%d" % k))
out = []
for op in ("create", "stat", "rename", "unlink"):
    os.system("sync; echo 3 > /proc/sys/vm/drop_caches")
    c0, t0 = counters(), time.monotonic()
    ps = [mp.Process(target=work, args=(op, k)) for k in range(w)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    dt, c1 = time.monotonic() - t0, counters()
    if any(p.exitcode != 0 for p in ps):
        sys.exit(1)
    out.append("%s %.0f/s (reads %.2f, proposals %.2f)" % (op, n / dt,
               (c1["reads"] - c0["reads"]) / n, (c1["proposals"] - c0["proposals"]) / n))
for k in range(w):
    os.rmdir(os.path.join(top, "w%d" % k))
os.rmdir(top)
print("round %s %s, %d proc: %s" % (rnd, mnt, w, "; ".join(out)))
PY
        done
    done
done
