#!/usr/bin/env bash
# The second command of the README, and what CI runs: builds the guests once, then every test
# on the embedded default (SQLite file), then the end-to-end suite again on PostgreSQL (a
# server this script starts on 127.0.0.1 and stops).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/build-guests.sh
bash scripts/test-servers.sh
# The guest SDKs' own unit tests (codec, descriptors), without the host.
PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s guest-sdk/python/tests
node --test guest-sdk/js/test/
cargo test --workspace --quiet

trap 'bash scripts/postgres.sh stop' EXIT
if ! pg_url=$(bash scripts/postgres.sh start | tail -1); then
  echo "SKIPPED: the PostgreSQL pass: the server could not start here (see target/tools/postgres/server.log)" >&2
  exit 0
fi
# The `sluice` command tests (cli::, crash::) drive the binary on its embedded default and
# check the SQLite file itself, and the language tests (languages*::) exercise the guests, not
# the records (they go through the same host paths as the Rust cases that do run here); every
# other end-to-end test runs again on PostgreSQL.
echo "the end-to-end suite again, on PostgreSQL ($pg_url)"
# (`--workspace --test e2e` selects the same features as the pass above, so nothing compiles
# again.)
SLUICE_TEST_POSTGRES="$pg_url" cargo test --quiet --workspace --test e2e -- \
  --skip cli:: --skip crash:: --skip languages
