#!/usr/bin/env bash
# Benchmarks on a release build, beside Flyte v2 local measured in the same run
# (set up the peer once with ../shared/peers/flyte/setup.sh; without it the peer is skipped).
# usage: scripts/bench.sh [N=1000]   (chain, records, files and frames)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/build-guests.sh
cargo build --quiet --release -p sluice-bench
target/release/sluice-bench chain "${1:-1000}"
target/release/sluice-bench records 2000
target/release/sluice-bench files 1024
target/release/sluice-bench frames 1000000
