#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: `start` prints a TEST_DATABASE_URL on a
# free local port (initdb refuses root, so the cluster runs as the `postgres` user or the
# current non-root user), `stop DIR` stops it and deletes it.
set -euo pipefail
cmd=${1:-start}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bindir" ]; then
  echo "PostgreSQL server binaries not found (Debian package postgresql)" >&2
  exit 1
fi

if [ "$cmd" = stop ]; then
  dir=$2
  run_as=$(stat -c %U "$dir")
  if [ "$(id -un)" = "$run_as" ]; then
    "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  else
    su "$run_as" -s /bin/sh -c "'$bindir/pg_ctl' -D '$dir/data' -m immediate stop" >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  exit 0
fi

dir=$(mktemp -d /tmp/assent-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_user() {
  if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres "$dir"
    su postgres -s /bin/sh -c "$1"
  else
    sh -c "$1"
  fi
}
as_user "'$bindir/initdb' -D '$dir/data' -U assent --auth=trust -E UTF8 --no-sync >'$dir/initdb.log' 2>&1"
# Throwaway: no fsync by default (tests need no durability); PG_FSYNC=on for benchmarks.
as_user "'$bindir/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c fsync=${PG_FSYNC:-off} -c max_connections=200\" start >/dev/null"
echo "PG_DIR=$dir"
echo "TEST_DATABASE_URL=postgres://assent@127.0.0.1:$port/postgres"
