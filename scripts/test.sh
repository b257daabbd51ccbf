#!/usr/bin/env bash
# The second command of the README, and what CI runs: builds the guests once, then every test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/build-guests.sh
bash scripts/test-servers.sh
cargo test --workspace --quiet
