#!/usr/bin/env bash
# Builds the guest components (release, wasm32-wasip2): the test fixtures and the examples.
# Output: target/wasm32-wasip2/release/{fixture_basic,fixture_durable,fixture_files,fixture_frames,example_orders}.wasm
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rustup target add wasm32-wasip2 >/dev/null
for dir in tests/fixtures examples/tasks; do
  cargo build --quiet --release --target wasm32-wasip2 --target-dir "$root/target" \
    --manifest-path "$root/$dir/Cargo.toml"
done
