#!/usr/bin/env bash
# Installs what the test families need when it is missing: a Python venv with maturin,
# pytest, jsonschema, Segment's Python library, schemathesis, pyarrow and cryptography (the
# second audit verifier's Ed25519) from PyPI, Segment's Node library and
# kotlinc (npm packages @segment/analytics-node, kotlin-compiler), the banner's build and
# test tools (consent-ui/package.json), Debian's Chromium for the browser tests, JNA (libjna-java),
# strip (binutils) for measuring the cdylib, PostgreSQL's server binaries for the
# collector's PostgreSQL suite, nats-server for the feed's JetStream relay tests, and
# redis-server for the recommendations cache shared by replicas.
# Idempotent; quiet when all is there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: $*; install them (sudo apt-get install $*)" >&2
    exit 1
  fi
  if [ -z "${ASSENT_APT_UPDATED:-}" ]; then
    apt-get update -qq
    export ASSENT_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

missing=()
[ -f /usr/share/java/jna.jar ] || missing+=(libjna-java)
command -v java >/dev/null || missing+=(default-jre-headless)
command -v strip >/dev/null || missing+=(binutils)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v nats-server >/dev/null || missing+=(nats-server)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  apt_install "${missing[@]}"
fi

venv="$root/target/venv"
if [ ! -x "$venv/bin/maturin" ] || [ ! -x "$venv/bin/pytest" ] \
  || ! "$venv/bin/python" -c "import jsonschema, segment.analytics, schemathesis, pyarrow, cryptography" 2>/dev/null; then
  echo "creating $venv with maturin, pytest, jsonschema, segment-analytics-python, schemathesis, pyarrow and cryptography"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "maturin>=1.9,<2" "pytest>=7" "jsonschema>=4.18" \
    "segment-analytics-python==2.4.0" "schemathesis>=4.32,<5" "pyarrow>=14" \
    "cryptography>=42"
fi

if [ ! -d collector/tests/clients/node_modules/@segment/analytics-node ]; then
  echo "installing @segment/analytics-node from npm"
  (cd collector/tests/clients && npm install --no-audit --no-fund --silent)
fi

if [ ! -x consent-ui/node_modules/.bin/esbuild ] || [ ! -d consent-ui/node_modules/playwright-core ]; then
  echo "installing the banner's build and test tools from npm (esbuild, typescript, playwright-core, axe-core, @iabtcf/core)"
  (cd consent-ui && npm ci --no-audit --no-fund --silent)
fi

if [ ! -x bindings/kotlin/node_modules/kotlin-compiler/bin/kotlinc ]; then
  echo "installing kotlin-compiler from npm"
  (cd bindings/kotlin && npm install --no-audit --no-fund --silent)
fi
