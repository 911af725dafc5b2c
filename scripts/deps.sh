#!/usr/bin/env bash
# Installs every Debian package dfs needs to build, test and run. Idempotent: does nothing when
# all packages are present, and runs `apt-get update` only when something is missing.
set -euo pipefail

PKGS=(
    build-essential cmake pkg-config
    libfuse3-dev fuse3
    libc-ares-dev libleveldb-dev libcjson-dev libcurl4-openssl-dev libmicrohttpd-dev
    uthash-dev libcriterion-dev
    curl wrk rsync git python3
    chromium
)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
