#!/usr/bin/env bash
# POSIX behaviour through ordinary tools, with the answers a local filesystem gives: test_fuse runs
# it on a dfs mount and on a local directory (MNT), SRC naming a tree to copy. Exits non-zero,
# naming the check, at the first difference.
set -euo pipefail
cd "$MNT"
fail() { echo "FAIL: $*" >&2; exit 1; }
check() { local want=$1; shift; local got; got=$("$@") || fail "$* exited $?"; [ "$got" = "$want" ] || fail "$*: got '$got', want '$want'"; }

# files: write, read, append, overwrite in the middle, truncate both ways
printf 'hello\n' > f
check hello cat f
printf 'world\n' >> f
check $'hello\nworld' cat f
printf 'J' | dd of=f bs=1 seek=1 conv=notrunc status=none
check $'hJllo\nworld' cat f
truncate -s 3 f
check hJl cat f
truncate -s 8 f
check 8 stat -c %s f
check '0000000   h   J   l  \0  \0  \0  \0  \0' sh -c "od -c f | head -1 | sed 's/ *$//'"
: > f
check 0 stat -c %s f

# a sparse file: a hole reads as zeros
dd if=/dev/zero of=sparse bs=1 count=1 seek=3000000 status=none
check 3000001 stat -c %s sparse
cmp sparse <(head -c 3000001 /dev/zero) || fail "hole not zeros"

# random data, several blocks (the test mounts with 1 MiB blocks), written at odd sizes
head -c 5555555 /dev/urandom > /tmp/dfs-fuse-rand.$$
cp /tmp/dfs-fuse-rand.$$ r
cmp r /tmp/dfs-fuse-rand.$$ || fail "5.5 MB copy differs"
dd if=/tmp/dfs-fuse-rand.$$ of=r2 bs=77777 status=none
cmp r2 /tmp/dfs-fuse-rand.$$ || fail "copy in 77777-byte writes differs"
rm -f /tmp/dfs-fuse-rand.$$

# own writes visible before close: write then read through another descriptor
exec 3>w
printf 'abc' >&3
check abc cat w
check 3 stat -c %s w
exec 3>&-

# O_APPEND from two processes: every line whole, none lost
(for i in $(seq 300); do echo "a$i"; done >> app) &
(for i in $(seq 300); do echo "b$i"; done >> app) &
wait
check 600 sh -c 'wc -l < app'
check 300 sh -c 'grep -c "^a[0-9]*$" app'
check 300 sh -c 'grep -c "^b[0-9]*$" app'

# timestamps: a write moves mtime and ctime, chmod only ctime, a new name the directory's mtime
touch -d '2001-01-01 UTC' app
printf 'more' >> app
[ "$(stat -c %Y app)" -gt 978307200 ] || fail "a write did not update mtime"
touch -d '2001-01-01 UTC' app
c0=$(stat -c %Z app)
chmod 600 app
check 978307200 stat -c %Y app
[ "$(stat -c %Z app)" -ge "$c0" ] || fail "chmod moved ctime back"
mkdir tdir && touch -d '2001-01-01 UTC' tdir && touch tdir/new
[ "$(stat -c %Y tdir)" -gt 978307200 ] || fail "a new name did not update the directory's mtime"

# directories, rename in its forms
mkdir -p d1/d2/d3
check 'd2' ls d1
mv f d1/d2/g
[ ! -e f ] || fail "rename left the source"
printf 'x' > y
mv y d1/d2/g
check x cat d1/d2/g
mv d1/d2 d1/e
check $'d3\ng' ls d1/e
mkdir -p d1/e/d3/inner
if mv d1/e d1/e/d3/inner/oops 2>/dev/null; then fail "moved a directory into itself"; fi
mkdir full && touch full/x
if rmdir full 2>/dev/null; then fail "rmdir of a non-empty directory"; fi
if mv -T d1/e/d3 full 2>/dev/null; then fail "rename over a non-empty directory"; fi
rm full/x && rmdir full
# renameat2 flags through libc
printf 'A' > ra && printf 'B' > rb
python3 - <<'PY' || fail "renameat2"
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
if libc.renameat2(AT_FDCWD, b"ra", AT_FDCWD, b"rb", 1) == 0 or ctypes.get_errno() != errno.EEXIST:
    raise SystemExit("RENAME_NOREPLACE over an existing name did not fail with EEXIST")
if libc.renameat2(AT_FDCWD, b"ra", AT_FDCWD, b"rb", 2) != 0:
    raise SystemExit("RENAME_EXCHANGE failed: %d" % ctypes.get_errno())
assert open("ra").read() == "B" and open("rb").read() == "A", "exchange did not swap"
PY

# hard links and symlinks
printf 'L' > l1
ln l1 l2
check 2 stat -c %h l1
check "$(stat -c %i l1)" stat -c %i l2
rm l1
check 1 stat -c %h l2
check L cat l2
ln -s l2 s
check l2 readlink s
check L cat s
ln -s /nonexistent/target dangling
check /nonexistent/target readlink dangling

# metadata
chmod 640 l2
check 640 stat -c %a l2
chown 1234:4321 l2
check 1234:4321 stat -c %u:%g l2
touch -d '2001-02-03 04:05:06 UTC' l2
check 981173106 stat -c %Y l2
long=$(printf 'n%.0s' $(seq 1 255))
touch "$long"
if touch "${long}x" 2>/dev/null; then fail "a 256-byte name was accepted"; fi
rm "$long"

# a file unlinked while open stays readable until the last close
printf 'still here' > open
exec 4<open
rm open
[ ! -e open ] || fail "unlinked name still there"
check 'still here' cat <&4
exec 4<&-

# a file renamed over while open (an editor saving) stays readable through its descriptor
printf 'old contents' > saved
printf 'new contents' > saved.tmp
exec 5<saved
mv saved.tmp saved
check 'new contents' cat saved
[ ! -e saved.tmp ] || fail "rename left its source name"
check 'old contents' cat <&5
exec 5<&-

# listing a large directory (several readdir pages)
mkdir many
(cd many && seq 1 1500 | xargs touch)
check 1500 sh -c 'ls many | wc -l'
check 1500 sh -c 'find many -type f | wc -l'

# ordinary tools: cp -r and diff -r, tar, git
cp -r "$SRC" tree
diff -r "$SRC" tree || fail "cp -r copy differs"
tar cf - -C "$SRC" . | (mkdir untar && tar xf - -C untar)
diff -r "$SRC" untar || fail "tar copy differs"
rsync -a "$SRC"/ rs/
diff -r "$SRC" rs || fail "rsync -a copy differs"
rsync -a rs/ "$MNT/rs2/" && diff -r rs rs2 || fail "second rsync differs"
git init -q repo
(cd repo && cp -r "$SRC" src && git add -A && git -c user.name=t -c user.email=t@t commit -qm one &&
    git mv src moved && git -c user.name=t -c user.email=t@t commit -qm two && git fsck --no-progress 2>&1 >/dev/null) ||
    fail "git"
check 2 sh -c 'cd repo && git log --oneline | wc -l'

df -P . | tail -1 | awk '{ if ($2 <= 0) exit 1 }' || fail "df shows no capacity"
echo "posix checks passed"
