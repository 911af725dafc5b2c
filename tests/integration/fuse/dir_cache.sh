#!/bin/sh
# The mount's directory cache (libdfs's dfs_lookup_cached) as programs see it. A, B and C are
# mounts of one cluster: B with entry, negative and attribute timeouts of 60 s (its listings live
# that long), C with 5 s; PORTS the masters' http ports.
#  1. 300 files made through A, then stat'ed by name through B with 300 absent names between
#     them: right sizes and absences, and far fewer reads at the masters than lookups.
#  2. Through B: renames, appends, chmods, hard links and unlinks, each checked at once and again
#     after the kernel forgot every name (echo 2 > drop_caches): the lookups then come from the
#     listing, which must show B's own changes.
#     A file with a second name elsewhere shows one link once the other name is removed.
#  3. Changes through A reach C within C's timeouts.
set -eu
: "${A:?}" "${B:?}" "${C:?}" "${PORTS:?}"

reads() {
    for p in $PORTS; do curl -sf "http://127.0.0.1:$p/metrics"; done |
        awk '/^dfs_raft_reads_fast_total/ {s += $2} END {print s + 0}'
}

mkdir "$A/d"
python3 - "$A/d" <<'PY'
import os, sys
for i in range(1, 301):
    with open(os.path.join(sys.argv[1], "f%d" % i), "wb") as f:
        f.write(b"x" * i)
for i in range(1, 31):
    with open(os.path.join(sys.argv[1], "k%d" % i), "wb") as f:
        f.write(b"k")
PY

r0=$(reads)
python3 - "$B/d" <<'PY'
import os, sys
d = sys.argv[1]
for i in range(1, 301):
    st = os.stat(os.path.join(d, "f%d" % i))
    assert st.st_size == i, ("f%d" % i, st.st_size)
    assert not os.path.exists(os.path.join(d, "absent%d" % i)), "absent%d" % i
for i in range(1, 31):
    assert os.stat(os.path.join(d, "k%d" % i)).st_size == 1
PY
r1=$(reads)
echo "dir_cache.sh: 600 lookups through B, $((r1 - r0)) reads at the masters"
[ $((r1 - r0)) -lt 100 ] || { echo "dir_cache.sh: the lookups were not answered from listings"; exit 1; }

# What B changes (MODE change: make the changes, each checked at once; MODE check: only check).
own_changes() { # MODE
    python3 - "$B/d" "$1" <<'PY'
import os, sys
d, what = sys.argv[1], sys.argv[2]
p = lambda n: os.path.join(d, n)
def check(i):
    g, h = p("g%d" % i), p("h%d" % i)
    assert not os.path.exists(p("f%d" % i)), ("f%d still there" % i, what)
    if i % 4 == 0:
        assert not os.path.exists(g), ("g%d not removed" % i, what)
        return
    st = os.stat(g)
    assert st.st_size == i + 1, ("g%d" % i, what, st.st_size)
    if i % 4 == 1:
        assert st.st_mode & 0o777 == 0o600, ("g%d" % i, what, oct(st.st_mode))
    if i % 4 == 2:
        assert st.st_nlink == 2 and os.stat(h).st_ino == st.st_ino, ("g%d" % i, what, st.st_nlink)
    else:
        assert st.st_nlink == 1 and not os.path.exists(h), ("g%d" % i, what, st.st_nlink)
for i in range(1, 301):
    if what == "change":
        os.rename(p("f%d" % i), p("g%d" % i))
        with open(p("g%d" % i), "ab") as f:
            f.write(b"y")
        if i % 4 == 0:
            os.unlink(p("g%d" % i))
        elif i % 4 == 1:
            os.chmod(p("g%d" % i), 0o600)
        elif i % 4 == 2:
            os.link(p("g%d" % i), p("h%d" % i))
        elif i % 4 == 3:
            os.link(p("g%d" % i), p("h%d" % i))
            os.unlink(p("h%d" % i))
    check(i)
# Names the listing knows, changed in place: a write, a chmod, a second link.
for i in range(1, 31):
    if what == "change":
        if i % 3 == 0:
            with open(p("k%d" % i), "ab") as f:
                f.write(b"k")
        elif i % 3 == 1:
            os.chmod(p("k%d" % i), 0o600)
        else:
            os.link(p("k%d" % i), p("l%d" % i))
    st = os.stat(p("k%d" % i))
    want = (2 if i % 3 == 0 else 1, 0o600 if i % 3 == 1 else 0o644, 2 if i % 3 == 2 else 1)
    got = (st.st_size, st.st_mode & 0o777, st.st_nlink)
    assert got == want, ("k%d" % i, what, got, want)
PY
}
own_changes change
sync
echo 2 >/proc/sys/vm/drop_caches # the lookups now come from the listing
own_changes check

# A second name in the listed directory for a file elsewhere; removing the other name (in a
# directory with no listing) leaves one link, also when the kernel forgot the name.
mkdir "$B/e"
echo x >"$B/e/x"
ln "$B/e/x" "$B/d/xl"
[ "$(stat -c %h "$B/d/xl")" = 2 ]
rm "$B/e/x"
sync
echo 2 >/proc/sys/vm/drop_caches
[ "$(stat -c %h "$B/d/xl")" = 1 ] || { echo "dir_cache.sh: d/xl keeps 2 links"; exit 1; }

# Through A, seen through C within its 5 s (10 s: the kernel's time plus the listing's), C having
# listed the directory first.
python3 - "$C/d" <<'PY'
import os, sys
for i in range(1, 301):
    os.path.exists(os.path.join(sys.argv[1], "g%d" % i))
assert os.path.exists(os.path.join(sys.argv[1], "g2"))
PY
echo new >"$A/d/theirs"
rm "$A/d/g2"
end=$(($(date +%s) + 12))
until [ -e "$C/d/theirs" ] && [ ! -e "$C/d/g2" ]; do
    [ "$(date +%s)" -lt "$end" ] || { echo "dir_cache.sh: A's changes not seen through C"; exit 1; }
    sleep 0.2
done
[ "$(cat "$C/d/theirs")" = new ]
