#!/usr/bin/env bash
# Builds the guest components into target/wasm32-wasip2/release:
#   Rust (release, wasm32-wasip2): the test fixtures (fixture_*.wasm) and examples (example_*.wasm);
#   Python (componentize-py): tests/fixtures/python/*.py and examples/python/*.py -> <name>.wasm;
#   JavaScript (componentize-js): tests/fixtures/js/*.js and examples/js/*.js -> <name>.wasm.
# Python and JS components are rebuilt only when their source, their SDK or the WIT changed
# (each takes 10-30 s). The tools are installed by scripts/build-py.sh and scripts/build-js.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/target/wasm32-wasip2/release"
rustup target add wasm32-wasip2 >/dev/null
for dir in tests/fixtures examples/tasks examples/csv; do
  cargo build --quiet --release --target wasm32-wasip2 --target-dir "$root/target" \
    --manifest-path "$root/$dir/Cargo.toml"
done

# stale OUTPUT SOURCE...: whether OUTPUT is missing or older than any SOURCE file.
stale() {
  local output=$1
  shift
  [ ! -f "$output" ] || [ -n "$(find "$@" -newer "$output" -type f -not -path '*/__pycache__/*' -print -quit)" ]
}

shopt -s nullglob
# Python and JavaScript guests build in parallel (each build is mostly one core).
build_python() {
  for app in "$root"/tests/fixtures/python/*.py "$root"/examples/python/*.py; do
    component="$out/$(basename "$app" .py).wasm"
    if stale "$component" "$app" "$root/guest-sdk/python" "$root/wit"; then
      "$root/scripts/build-py.sh" "$app" -o "$component"
    fi
  done
}
build_js() {
  for app in "$root"/tests/fixtures/js/*.js "$root"/examples/js/*.js; do
    component="$out/$(basename "$app" .js).wasm"
    if stale "$component" "$app" "$root/guest-sdk/js/src" "$root/wit"; then
      "$root/scripts/build-js.sh" "$app" -o "$component"
    fi
  done
}
build_python &
python_job=$!
build_js
wait "$python_job"
