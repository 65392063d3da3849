#!/usr/bin/env bash
# Ingest A/B of two builds of the collector: BASE (a revision) against the work tree, on
# SQLite, each built in its own target directory, run alternately ROUNDS times (base-new,
# then new-base, ...) so a drift over the session counts against both alike. Prints each
# run's `collector:` line and the means.
#
#   scripts/bench-ab.sh BASE [ROUNDS]     (LOAD_CONNECTIONS, LOAD_SECONDS as for the bench)
set -euo pipefail
base=${1:?usage: scripts/bench-ab.sh BASE_REVISION [ROUNDS]}
rounds=${2:-4}
root=$(git rev-parse --show-toplevel)
work=${AB_DIR:-${TMPDIR:-/tmp}/assent-bench-ab}
mkdir -p "$work"
if [ ! -d "$work/base" ]; then
  git -C "$root" worktree add -f --detach "$work/base" "$base" >/dev/null
else
  git -C "$work/base" checkout -q --detach "$base"
fi

# The bench binary a build produced (cargo prints where it put it).
build() {
  local dir=$1 target=$2
  (cd "$dir" && CARGO_TARGET_DIR=$target cargo bench -p assent-collector --bench load \
    --no-run --message-format=json 2>/dev/null) |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "load" and m.get("executable"):
        print(m["executable"])' | tail -1
}
echo "building $base and the work tree (release, each in its own target directory)..."
base_bin=$(build "$work/base" "$work/target-base")
new_bin=$(build "$root" "$root/target")
[ -x "$base_bin" ] && [ -x "$new_bin" ] || { echo "a build failed" >&2; exit 1; }

run() {
  local label=$1 bin=$2
  # SQLite only; the newer bench stops after ingest with LOAD_INGEST_ONLY.
  local line
  line=$(cd "$root/collector" && env -u TEST_DATABASE_URL LOAD_ONLY=sqlite LOAD_INGEST_ONLY=1 \
    "$bin" --bench 2>/dev/null | grep -m1 'sqlite   collector:' || true)
  echo "== $label  ${line:-run failed}"
  rate=$(sed -E 's/.*collector: +([0-9]+) events.*/\1/' <<<"$line")
  echo "$label $rate" >>"$work/rates"
}
: >"$work/rates"
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then run "base r$r" "$base_bin"; run "new  r$r" "$new_bin"
  else run "new  r$r" "$new_bin"; run "base r$r" "$base_bin"; fi
done
python3 - "$work/rates" <<'PY'
import sys, statistics
rates = {"base": [], "new": []}
for line in open(sys.argv[1]):
    label, _, rate = line.split()
    if rate.isdigit():
        rates[label].append(int(rate))
b, n = rates["base"], rates["new"]
if b and n:
    print(f"means: base {statistics.mean(b):.0f}, new {statistics.mean(n):.0f} events/s; new/base = {statistics.mean(n) / statistics.mean(b):.3f} ({len(b)} + {len(n)} runs)")
PY
