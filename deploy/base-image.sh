#!/usr/bin/env bash
# Makes the base image deploy/Dockerfile builds on, debian:bookworm-slim, where no image registry
# can be reached: debootstrap (minbase) from Debian's package mirror, trimmed like the official
# slim image, then `docker import`. Does nothing when the image is already there; tries
# `docker pull` first.
#
#   deploy/base-image.sh [IMAGE]    (default debian:bookworm-slim; root, debootstrap installed:
#                                    `scripts/deps.sh docker`)
#
# Environment: DFS_MIRROR (default http://deb.debian.org/debian), DFS_NO_PULL=1 (skip the pull).
set -euo pipefail

IMAGE=${1:-debian:bookworm-slim}
SUITE=bookworm
MIRROR=${DFS_MIRROR:-http://deb.debian.org/debian}

say() { printf 'base-image: %s\n' "$*"; }
die() {
    printf 'base-image: %s\n' "$*" >&2
    exit 1
}

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    say "$IMAGE is present"
    exit 0
fi
if [ "${DFS_NO_PULL:-0}" != 1 ] && timeout 120 docker pull -q "$IMAGE" >/dev/null 2>&1; then
    say "$IMAGE pulled"
    exit 0
fi
case $IMAGE in
*:bookworm* | *:12*) ;;
*) die "$IMAGE cannot be pulled, and only a Debian 12 (bookworm) image can be made here" ;;
esac
[ "$(id -u)" -eq 0 ] || die "$IMAGE cannot be pulled; making it with debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is missing: scripts/deps.sh docker"

say "$IMAGE cannot be pulled: making it with debootstrap ($SUITE from $MIRROR)"
ROOTFS=$(mktemp -d /var/tmp/dfs-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
LOG=$ROOTFS.log
if ! debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$LOG" 2>&1; then
    tail -n 20 "$LOG" >&2
    die "debootstrap failed (log: $LOG)"
fi
rm -f "$LOG"

# Trim as the official slim image does: no package caches or lists, no manual pages, documentation
# (except copyrights) or translations, now or from packages installed later.
cd "$ROOTFS"
rm -rf var/cache/apt/*.bin var/cache/apt/archives/*.deb var/lib/apt/lists/* var/log/* \
    usr/share/man/* usr/share/locale/* usr/share/info/*
find usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
cat >etc/dpkg/dpkg.cfg.d/slim <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
cat >etc/apt/apt.conf.d/slim <<'EOF'
APT::Install-Recommends "false";
Acquire::Languages "none";
EOF
rm -f etc/apt/sources.list
cat >etc/apt/sources.list.d/debian.sources <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
: >etc/hostname
cd /

tar -C "$ROOTFS" --numeric-owner -c . |
    docker import --change 'CMD ["bash"]' --message "debootstrap --variant=minbase $SUITE" - "$IMAGE" >/dev/null
say "$IMAGE made ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
