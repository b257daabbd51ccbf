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
# build_lang EXT LANG SDK-DIR BUILDER: every app of that language (tests/fixtures/LANG/*.EXT and
# examples/LANG/*.EXT) whose component is missing or older than its source, SDK or the WIT.
build_lang() {
  local ext=$1 lang=$2 sdk=$3 builder=$4
  for app in "$root"/tests/fixtures/"$lang"/*."$ext" "$root"/examples/"$lang"/*."$ext"; do
    component="$out/$(basename "$app" ."$ext").wasm"
    if stale "$component" "$app" "$sdk" "$root/wit"; then
      "$builder" "$app" -o "$component"
    fi
  done
}
# Python and JavaScript guests build in parallel (each build is mostly one core).
build_lang py python "$root/guest-sdk/python" "$root/scripts/build-py.sh" &
python_job=$!
build_lang js js "$root/guest-sdk/js/src" "$root/scripts/build-js.sh"
wait "$python_job"
