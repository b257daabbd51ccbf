#!/usr/bin/env bash
# Builds a JavaScript task component: scripts/build-js.sh app.js -o app.wasm [--name ENV]
# Installs the pinned tools (componentize-js, rolldown) into target/tools/js-guest on first use.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/target/tools/js-guest"
wanted="@bytecodealliance/componentize-js@0.23.0 rolldown@1.3.3"
if [ "$(cat "$tools/.installed" 2>/dev/null)" != "$wanted" ]; then
  # A fresh directory each time: npm adding packages to an existing tree has dropped
  # transitive dependencies here.
  rm -rf "$tools" && mkdir -p "$tools"
  echo '{"name": "sluice-js-tools", "private": true}' > "$tools/package.json"
  # shellcheck disable=SC2086
  (cd "$tools" && npm install --silent --no-audit --no-fund --save-exact $wanted)
  echo "$wanted" > "$tools/.installed"
fi
SLUICE_JS_TOOLS="$tools" exec node "$root/guest-sdk/js/build.mjs" "$@"
