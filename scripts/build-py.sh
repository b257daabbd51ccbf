#!/usr/bin/env bash
# Builds a Python task component: scripts/build-py.sh app.py -o app.wasm [--name ENV]
# Installs componentize-py (pinned) into target/tools/py-guest on first use.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/target/tools/py-guest"
version=0.25.1
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
fi
exec "$venv/bin/python" "$root/guest-sdk/python/build.py" "$@"
