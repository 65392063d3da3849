# One target per test family, and `make test` for all of them (what CI runs).
SHELL := /bin/bash
VENV := target/venv
KOTLIN_HOME := bindings/kotlin/node_modules/kotlin-compiler
JNA := /usr/share/java/jna.jar
LIB_DIR := target/release

.PHONY: ui test-ui test deps lint readme sdk-demo bench-collector bench-segmentation bench-recommendation bench-experiments bench-audit bench-credentials fuzz fuzz-api test-rust test-clients bindings test-python test-kotlin test-swift examples example-python example-kotlin bench run

# One build from scratch: no incremental caches (gigabytes the run would never reuse).
test: export CARGO_INCREMENTAL := 0
test: deps lint test-rust test-clients fuzz-api test-ui test-python test-kotlin test-swift examples
	@echo "make test: every test family passed"

deps:
	@scripts/ensure-deps.sh

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

# The collector's suite runs on SQLite and on PostgreSQL (a throwaway cluster when
# TEST_DATABASE_URL is not given).
test-rust:
	scripts/with-postgres.sh cargo test --workspace

# Segment's own Python and Node libraries, unchanged, sending to the real collector binary.
test-clients: deps
	cargo build -p assent-collector
	cd collector/tests/clients && ../../../$(VENV)/bin/python -m pytest -q test_segment_python.py test_warehouse.py
	cd collector/tests/clients && node --test

# The web banner (consent-ui/dist): assent.js, assent.esm.js, the on-demand modules and
# their content-hashed copies, which the collector serves at /sdk/.
ui:
	@[ -x consent-ui/node_modules/.bin/esbuild ] || (cd consent-ui && npm ci --no-audit --no-fund --silent)
	cd consent-ui && node build.mjs

# The banner: type check, unit tests (node's runner), then the browser tests in Debian's
# Chromium against the real collector binary.
test-ui: deps ui
	cargo build -p assent-collector
	cd consent-ui && npx tsc --noEmit -p .
	cd consent-ui && node build.mjs --tests >/dev/null && node --test build/unit/
	cd consent-ui && node --test --test-concurrency=1 test/e2e/

bindings:
	bindings/generate.sh

test-python: deps
	rm -rf target/wheels
	cd bindings/python && ../../$(VENV)/bin/maturin build --release --quiet -o ../../target/wheels
	$(VENV)/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels/assent_sdk-*.whl
	$(VENV)/bin/python -m pytest -q protocol/tests bindings/python/tests

test-kotlin: deps bindings
	mkdir -p target/kotlin
	$(KOTLIN_HOME)/bin/kotlinc -nowarn -cp $(JNA) \
	  bindings/kotlin/generated/dev/assent/core/assent_core.kt \
	  bindings/kotlin/src/test/kotlin/AssentBindingTest.kt -d target/kotlin/tests.jar
	java -Djna.library.path=$(LIB_DIR) \
	  -cp target/kotlin/tests.jar:$(JNA):$(KOTLIN_HOME)/lib/kotlin-stdlib.jar \
	  AssentBindingTestKt protocol/test-vectors/user-id-hmac.json

# No Swift toolchain exists here: the Swift binding is generated and checked for the
# declarations apps use, but not compiled.
test-swift: bindings
	@for sym in "class AssentClient" "func track(" "func setConsent(" "protocol HttpTransport" "enum AssentError"; do \
	  grep -q "$$sym" bindings/swift/generated/AssentCore.swift || { echo "Swift binding lacks: $$sym"; exit 1; }; \
	done
	@echo "swift: binding generated (not compiled: no Swift toolchain)"

# The README's examples, run as written, so they stay true.
examples: example-python example-kotlin readme

# The README's collector and Python snippets, pasted as written (scripts/readme-snippets.py).
readme: test-python
	cargo build -p assent-collector
	$(VENV)/bin/python scripts/readme-snippets.py target/debug/assent-collector

example-python: test-python
	$(VENV)/bin/python bindings/python/examples/quickstart.py

example-kotlin: deps bindings
	mkdir -p target/kotlin
	$(KOTLIN_HOME)/bin/kotlinc -nowarn -cp $(JNA) \
	  bindings/kotlin/generated/dev/assent/core/assent_core.kt \
	  bindings/kotlin/examples/Quickstart.kt -d target/kotlin/quickstart.jar
	java -Djna.library.path=$(LIB_DIR) \
	  -cp target/kotlin/quickstart.jar:$(JNA):$(KOTLIN_HOME)/lib/kotlin-stdlib.jar QuickstartKt

bench: deps
	cargo build --release -p assent-core
	strip -s -o target/libassent_core.stripped.so $(LIB_DIR)/libassent_core.so
	cargo bench -p assent-core --bench track

# The collector on 127.0.0.1:8080 with an embedded SQLite file (assent.db); migrations
# run at start, and the first start prints a write key and a compliance token. The web
# banner is built first and served at /sdk/assent.js.
run: ui
	cargo run --release -p assent-collector -- serve

# The collector's load generator on SQLite and on PostgreSQL (a throwaway cluster with
# fsync on, so acknowledged means durable as in production).
bench-collector:
	PG_FSYNC=on scripts/with-postgres.sh cargo bench -p assent-collector --bench load

# Consent proofs: consent records/s over HTTP on SQLite with the Merkle tree kept, audit
# appends/s, inclusion and consistency proof time and size at 1M and 10M leaves.
bench-audit:
	cargo bench -p assent-collector --bench audit

# Segmentation's k-means against scikit-learn (installed into the venv from PyPI) in one
# run on the same 1,000,000 x 8 points: fit to convergence, time per iteration next to a
# bare pass over the data, assignments per second.
bench-segmentation: deps
	$(VENV)/bin/pip install -q scikit-learn recordlinkage
	cargo bench -p assent-segmentation --bench kmeans
	cargo bench -p assent-segmentation --bench dedup
	cargo bench -p assent-segmentation --bench compare

# Recommendations against implicit (ALS, BPR, item-kNN) and an EASE in NumPy (PyPI) on
# goodbooks-10k read from ../shared/data: the same split, the same grid, in one run.
bench-recommendation: deps
	$(VENV)/bin/pip install -q implicit scipy threadpoolctl
	cargo bench -p assent-recommendation --bench compare

# Flag evaluations and experiment assignments per second on one core.
bench-experiments:
	cargo bench -p assent-experiments --bench flags

# Schema-driven fuzzing of the HTTP API (schemathesis from PyPI against the served
# /openapi.json and the real binary): no 5xx, no undocumented status, content type or
# shape. Two passes of FUZZ_API_SECONDS (default 40).
fuzz-api: deps
	cargo build -p assent-collector
	scripts/fuzz-api.sh

# Memory of the release collector under 6,000 distinct 256 KB credentials, then 6,000
# distinct short ones (RSS before and after).
bench-credentials:
	cargo build --release -p assent-collector
	python3 scripts/bench-credentials.py

# The coverage-guided fuzzer on the batch parser (cargo-fuzz; FUZZ_SECONDS, default 60).
fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd collector/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none batch_parser -- -max_total_time=$${FUZZ_SECONDS:-60}

# The SDK end to end against a stand-in collector that prints what it receives.
sdk-demo:
	cargo run -q -p assent-core --example quickstart
