#!/usr/bin/env bash
# Starts (start) or stops (stop) a throwaway PostgreSQL server on 127.0.0.1 for the tests,
# installing Debian's package when it is missing. Its data lives in target/tools/postgres and
# goes away on stop. `start` prints the server's URL on its last line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data="$root/target/tools/postgres"
port="${SLUICE_TEST_PG_PORT:-54329}"

bin_dir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

# initdb and the server refuse to run as root: use the package's postgres user then.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    if [ -z "$(bin_dir)" ]; then
      echo "installing postgresql (Debian package)" >&2
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
    fi
    bin=$(bin_dir)
    rm -rf "$data"
    mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown postgres "$data"
    as_owner "$bin/initdb" -D "$data" -U postgres -A trust --no-sync >/dev/null
    as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=on -c max_connections=400" \
      start >/dev/null
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    bin=$(bin_dir)
    if [ -n "$bin" ] && [ -f "$data/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null || true
    fi
    rm -rf "$data"
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
