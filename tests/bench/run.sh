#!/usr/bin/env bash
# `make bench`: the benchmarks that run against this machine alone, in the release build. Each
# prints its figures and the comparison it makes; see docs/benchmarks.md for recorded results.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=build/release
echo "== HTTP stack: small JSON requests over keep-alive (target >= 20,000/s)"
"$B/tests/bench/bench_http" --threads 2 --seconds 5
echo "== Raft core: fault-free simulated 3-node cluster"
"$B/tests/raft/bench_raft"
echo "== Namespace state machine: 1,000,000 files"
"$B/master/bench_namespace"
echo "== Committed writes: 3 dfs-masters vs 3 etcd members"
./tests/bench/master_vs_etcd.sh "$B" 10
echo "== Chunkserver pipeline vs dd"
DFS_CHUNKSERVER="$B/chunk/dfs-chunkserver" ./tests/bench/chunk_pipeline.sh
