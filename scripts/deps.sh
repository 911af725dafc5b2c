#!/usr/bin/env bash
# Installs the Debian packages dfs needs. Idempotent: does nothing when all packages are present,
# and runs `apt-get update` only when something is missing.
#
#   scripts/deps.sh          what dfs needs to build, test and run (`make build`, `make test`)
#   scripts/deps.sh docker   what deploy/compose-test.sh needs on the host: the Docker engine,
#                            docker-compose and debootstrap (for a base image without a registry)
set -euo pipefail

PKGS=()
for group in "${@:-build}"; do
    case $group in
    build)
        PKGS+=(
            build-essential cmake pkg-config
            libfuse3-dev fuse3
            libc-ares-dev libleveldb-dev libcjson-dev libcurl4-openssl-dev libmicrohttpd-dev
            libjemalloc-dev
            uthash-dev libcriterion-dev
            curl wrk rsync git python3
            iproute2 nftables
            chromium
        )
        ;;
    docker) PKGS+=(docker.io docker-compose debootstrap curl python3) ;;
    *)
        echo "usage: scripts/deps.sh [build] [docker]" >&2
        exit 2
        ;;
    esac
done

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
