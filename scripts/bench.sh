#!/usr/bin/env bash
# Benchmarks on a release build, beside Flyte v2 local measured in the same run (installed
# into target/tools/flyte-venv by the peer's setup.sh on first use; skipped if that fails).
# usage: scripts/bench.sh [N=1000]   (fan-out, chain, cache, languages, records, files and frames)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/build-guests.sh
cargo build --quiet --release -p sluice-bench
# The peer (Flyte v2 local) in a venv of our own: its directory may be read-only.
peer=../shared/peers/flyte
if [ ! -x target/tools/flyte-venv/bin/python ] && [ -x "$peer/setup.sh" ]; then
  bash "$peer/setup.sh" "$root/target/tools/flyte-venv" || echo "the Flyte peer could not be installed; it is skipped"
fi
# The cases keep their homes here and this script removes them after the last one: on this VM's
# ext4 (no journal) creating an inode is slow for minutes after many were deleted, so a case
# that removed its home (the fan-out's is 160,000 files and directories) would slow the durable
# cases after it (BENCHMARKS.md).
export SLUICE_BENCH_HOMES="$root/target/bench-homes/$$"
# The chain also runs on PostgreSQL, on a server started here and stopped on exit.
trap 'bash scripts/postgres.sh stop; rm -rf "$SLUICE_BENCH_HOMES"' EXIT
target/release/sluice-bench fanout 10000
pg_url=$(bash scripts/postgres.sh start | tail -1) || pg_url=""
SLUICE_BENCH_POSTGRES="$pg_url" target/release/sluice-bench chain "${1:-1000}"
target/release/sluice-bench cache "${1:-1000}"
target/release/sluice-bench languages "${1:-1000}"
target/release/sluice-bench records 2000
target/release/sluice-bench files 1024
target/release/sluice-bench frames 1000000
