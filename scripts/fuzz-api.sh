#!/usr/bin/env bash
# Schema-driven fuzzing of the collector's HTTP API: schemathesis (PyPI) reads the served
# /openapi.json and sends what it generates from it to the real collector binary on a
# fresh SQLite file. Fails on any 5xx, any status or content type the document does not
# list, and any answer that does not match its documented schema. Bounded in time:
# FUZZ_API_SECONDS per pass (default 40), two passes (write key, compliance token).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv="$root/target/venv"
[ -x "$venv/bin/schemathesis" ] || "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis>=4.32,<5"
bin="$root/target/debug/assent-collector"
[ -x "$bin" ] || cargo build -q -p assent-collector
dir=$(mktemp -d)
port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
wk="wk_fuzz_write_key_Qz7Xc2Vb9Nm4Lk8Jh3Gf"
adm="adm_fuzz_admin_token_Tr6Ew1Qa5Sd9Fg3Hj7"
ASSENT_BIND="127.0.0.1:$port" ASSENT_DATABASE_URL="sqlite://$dir/fuzz.db" \
  ASSENT_BOOTSTRAP_WRITE_KEY="$wk" ASSENT_BOOTSTRAP_ADMIN_TOKEN="$adm" \
  ASSENT_RATE_LIMIT_PER_SECOND=100000 ASSENT_RATE_LIMIT_BURST=100000 \
  ASSENT_CONSENT_RECORDS_PER_SECOND=100000 ASSENT_CONSENT_RECORDS_BURST=100000 \
  ASSENT_SDK_DIR="$root/consent-ui/dist" RUST_LOG=warn \
  "$bin" serve >"$dir/collector.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
url="http://127.0.0.1:$port"
"$venv/bin/python" - "$url/healthz" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("the collector did not start")
PY
seconds=${FUZZ_API_SECONDS:-40}
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
run() {
  "$venv/bin/schemathesis" run "$url/openapi.json" --url "$url" --checks "$checks" \
    --max-time "$seconds" --workers 1 --suppress-health-check all --no-color "$@"
}
echo "schemathesis: ingest and consent with the write key (${seconds} s)"
run -H "Authorization: Bearer $wk" --include-tag ingest --include-tag consent --exclude-path-regex '^/v1/consent/\{'
echo "schemathesis: compliance and operations with the compliance token (${seconds} s)"
run -H "Authorization: Bearer $adm" --exclude-tag ingest --exclude-path /v1/consent
if grep -q "panicked" "$dir/collector.log"; then
  echo "the collector panicked:"; grep -A5 panicked "$dir/collector.log"; exit 1
fi
echo "schemathesis: no server error, no undocumented answer"
