#!/usr/bin/env bash
# Runs a command with TEST_DATABASE_URL set: the one given, or a throwaway PostgreSQL
# cluster started for the command and removed after it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${TEST_DATABASE_URL:-}" ]; then
  exec "$@"
fi
out=$("$here/pg-test-cluster.sh" start)
eval "$(echo "$out" | sed 's/^/export /')"
trap '"$here/pg-test-cluster.sh" stop "$PG_DIR"' EXIT
echo "throwaway PostgreSQL cluster: $TEST_DATABASE_URL"
"$@"
