#!/usr/bin/env bash
# Installs the real servers the tests start on 127.0.0.1 (the tests start and stop them):
# moto's S3-compatible server, in a venv under target/tools so nothing system-wide changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/target/tools/moto"
if [ ! -x "$venv/bin/moto_server" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]'
fi
