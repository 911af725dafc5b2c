# shellcheck shell=bash
# Sourced by fuse_vs_local.sh and fuse_vs_moosefs.sh (not run on its own): the reference FUSE
# filesystem of their side-by-side runs, to tell what any FUSE mount costs from what dfs costs.
# It is libfuse's own low-level passthrough example, passthrough_ll.c (with passthrough_helpers.h),
# as Debian's libfuse3-dev ships it in /usr/share/doc/libfuse3-dev/examples (plain or gzipped;
# PT_EXAMPLES overrides the directory), compiled on the fly into the run's temporary directory:
#   gcc -O2 -Wall -DHAVE_FALLOCATE -DHAVE_POSIX_FALLOCATE -DHAVE_COPY_FILE_RANGE \
#       passthrough_ll.c $(pkg-config --cflags --libs fuse3)
# The example needs no config.h; the three -D are what libfuse's own build (its meson checks of
# glibc's functions) defines for it on Linux: without them fallocate would answer EOPNOTSUPP and
# copy_file_range would not be offered. The benchmarks' workloads reach neither.
#
# It is mounted over a directory of the same disk with the example's defaults, which match the
# dfs mount's: attribute and entry timeouts of 1 s (cache=auto), no writeback cache, page cache
# dropped at open (no keep_cache), multi-threaded; plus default_permissions, which the dfs mount
# also sets. Differences that remain: libfuse's default of at most 10 worker threads (dfs: 64),
# and the example's readdirplus and splice reads (libfuse's defaults for it). libfuse 3.14 logs
# "Ignoring invalid max threads value 4294967295 > max (100000)." at start: the example's -1
# (unset) idle-thread count being converted; the default is kept, nothing else changes.
#
#   pt_build DIR              compile DIR/passthrough_ll; sets PT_BIN
#   pt_mount BACKING MNT LOG  mount BACKING at MNT (the daemon runs with -f, in the background;
#                             its pid in PT_PID, its output in LOG); returns once mounted
#   pt_stop                   fusermount3 -u MNT and wait for the daemon to exit (a lazy unmount
#                             and SIGKILL if it does not); safe to call when nothing was started
PT_BIN=
PT_PID=
PT_MNT=
PT_EXAMPLES=${PT_EXAMPLES:-/usr/share/doc/libfuse3-dev/examples}

pt_build() { # DIR
    local dir=$1 f t
    for t in gcc pkg-config fusermount3; do
        command -v "$t" >/dev/null || {
            echo "missing tool for the passthrough reference: $t (apt-get install gcc pkg-config fuse3 libfuse3-dev)" >&2
            return 1
        }
    done
    pkg-config --exists fuse3 || { echo "fuse3 development files missing: apt-get install libfuse3-dev" >&2; return 1; }
    mkdir -p "$dir"
    for f in passthrough_ll.c passthrough_helpers.h; do
        if [ -f "$PT_EXAMPLES/$f" ]; then
            cp "$PT_EXAMPLES/$f" "$dir/$f"
        elif [ -f "$PT_EXAMPLES/$f.gz" ]; then
            gzip -dc "$PT_EXAMPLES/$f.gz" >"$dir/$f"
        else
            echo "$PT_EXAMPLES/$f not found: apt-get install libfuse3-dev (or set PT_EXAMPLES)" >&2
            return 1
        fi
    done
    # shellcheck disable=SC2046 # pkg-config's flags are meant to be split
    if ! gcc -O2 -Wall -DHAVE_FALLOCATE -DHAVE_POSIX_FALLOCATE -DHAVE_COPY_FILE_RANGE \
        -o "$dir/passthrough_ll" "$dir/passthrough_ll.c" $(pkg-config --cflags --libs fuse3) \
        >"$dir/build.log" 2>&1; then
        echo "compiling $PT_EXAMPLES/passthrough_ll.c failed:" >&2
        cat "$dir/build.log" >&2
        return 1
    fi
    PT_BIN=$dir/passthrough_ll
}

# Also true for the stale mount that a killed daemon leaves (mountpoint(1) cannot stat it).
pt_mounted() {
    [ -n "$PT_MNT" ] || return 1
    mountpoint -q "$PT_MNT" 2>/dev/null ||
        awk -v m="$PT_MNT" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

pt_mount() { # BACKING MNT LOG
    local backing=$1 log=$3
    PT_MNT=$2
    mkdir -p "$backing" "$PT_MNT"
    # The example keeps an O_PATH descriptor open for every inode the kernel holds and does not
    # raise its own limit: give it the hard limit, so that many small files do not hit EMFILE.
    (
        ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
        exec "$PT_BIN" -f -o "source=$backing,default_permissions,fsname=passthrough_ll" "$PT_MNT"
    ) >"$log" 2>&1 &
    PT_PID=$!
    for _ in $(seq 200); do
        mountpoint -q "$PT_MNT" && return 0
        kill -0 "$PT_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "the passthrough FUSE mount of $backing at $PT_MNT failed:" >&2
    cat "$log" >&2
    return 1
}

pt_stop() {
    local t
    if pt_mounted; then
        for t in 1 2 3 4 5; do
            fusermount3 -u "$PT_MNT" 2>/dev/null && break
            pt_mounted || break
            sleep 1
        done
        pt_mounted && { fusermount3 -uz "$PT_MNT" 2>/dev/null || umount -l "$PT_MNT" 2>/dev/null || true; }
    fi
    [ -n "$PT_PID" ] || return 0
    for t in $(seq 100); do kill -0 "$PT_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PT_PID" 2>/dev/null && kill -KILL "$PT_PID" 2>/dev/null
    wait "$PT_PID" 2>/dev/null || true
    PT_PID=
}
