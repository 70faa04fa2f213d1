# keyward — the two front-door commands are `make run` and `make test`.
# Every install step below checks first and skips itself when already done.

SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO_LEPTOS_VERSION := 0.3.10
WASM_BINDGEN_VERSION := 0.2.130
BINARYEN_VERSION     := 132.0.0
BINARYEN_MAJOR       := 132

# cargo-leptos builds every profile with RUSTFLAGS="--cfg erase_components"
# (`always-erase-components` in Cargo.toml; it appends that to any RUSTFLAGS
# it inherits, so RUSTFLAGS must stay unset for it) and sets LEPTOS_OUTPUT_NAME, which leptos reads at compile time (it names
# the wasm file pages load). Plain cargo commands get exactly the same flags
# and variable, so every step shares one build and test binaries serve the
# right assets.
unexport RUSTFLAGS
export LEPTOS_OUTPUT_NAME := keyward
CARGO := env RUSTFLAGS="--cfg erase_components" cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

SDK_VENV := target/sdk-venv

# Debug builds (make run, make test) keep their assets apart from the release
# ones: a page from one build fails to hydrate with the other build's wasm,
# so sharing target/site let `make run` or `make test` break the
# `target/release/keyward serve` that `make build` set up. cargo-leptos, the
# server and the tests all read LEPTOS_SITE_ROOT.
DEBUG_SITE := target/site-debug
run test unit-and-integration e2e deploy-test: export LEPTOS_SITE_ROOT := $(DEBUG_SITE)

# Rarely opened pages (settings, the admin's) go to wasm chunks of their
# own, loaded when first opened (`lazy_page!` in src/app.rs): the chat
# loads without them. cargo-leptos splits only when asked on its command line.
LEPTOS_BUILD := cargo leptos build --split

# After every site build: the assets are published under the build's own
# id (pkg/v/<id>/, which pages link and browsers cache for good), with
# brotli and gzip copies /pkg serves to browsers that accept them. Debug
# builds compress quickly; a release build at brotli's best.
PREPARE_ASSETS_DEBUG   := ./target/debug/keyward prepare-assets --quality 5
PREPARE_ASSETS_RELEASE := ./target/release/keyward prepare-assets

.PHONY: help run test build bench tools browser-tools sdk-tools deploy-tools lighthouse-tools lint unit-and-integration e2e deploy-test

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-22s %s\n", $$1, $$2}'

tools: ## install the Rust/wasm toolchain pieces that are missing
	@rustup target list --installed | grep -qx wasm32-unknown-unknown \
		|| rustup target add wasm32-unknown-unknown
	@cargo leptos --version 2>/dev/null | grep -q "$(CARGO_LEPTOS_VERSION)" \
		|| cargo install cargo-leptos --version $(CARGO_LEPTOS_VERSION) --locked
	@wasm-bindgen --version 2>/dev/null | grep -q "$(WASM_BINDGEN_VERSION)" \
		|| cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION)
	@wasm-opt --version 2>/dev/null | grep -q "version $(BINARYEN_MAJOR)" \
		|| npm install -g binaryen@$(BINARYEN_VERSION)

browser-tools: ## Debian Chromium and the Playwright test runner
	@command -v chromium >/dev/null \
		|| { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }
	@cd end2end && { [ -d node_modules/@playwright/test ] && [ node_modules/.package-lock.json -nt package-lock.json ] \
		|| npm ci --no-audit --no-fund; }

sdk-tools: ## the official Anthropic Python (virtualenv) and TypeScript SDKs, for the gateway tests
	@[ $(SDK_VENV)/.installed -nt tests/sdk/requirements.txt ] || { \
		python3 -m venv $(SDK_VENV) \
		&& $(SDK_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt \
		&& touch $(SDK_VENV)/.installed; }
	@cd tests/sdk/ts && { [ node_modules/.package-lock.json -nt package-lock.json ] \
		|| npm ci --no-audit --no-fund --loglevel=error; }

lighthouse-tools: browser-tools ## Lighthouse (pinned: 12.2.3 is the last for Node 20), for the page-load benchmark
	@cd benches/lighthouse && { [ node_modules/.package-lock.json -nt package-lock.json ] \
		|| npm ci --no-audit --no-fund --loglevel=error; }

DEMO_PLATFORM_KEY := sk-ant-api03-keyward-mock-platform-key
DEMO_USER_KEY     := sk-ant-api03-keyward-mock-user-key-TRY1
MOCK_ADDR         := 127.0.0.1:4010

deploy-tools: ## nginx (Debian's nginx-light), for the deployment test
	@command -v nginx >/dev/null \
		|| { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light; }

run: tools ## build, migrate and serve on http://127.0.0.1:3000 (SQLite in data/)
	$(LEPTOS_BUILD)
	$(PREPARE_ASSETS_DEBUG)
	@if [ -n "$$ANTHROPIC_API_KEY" ]; then \
		exec ./target/debug/keyward serve; \
	fi; \
	$(CARGO) build --features ssr --bin mock_llm || exit 1; \
	echo "No ANTHROPIC_API_KEY: starting the bundled mock upstream on $(MOCK_ADDR). Demo mode: replies are canned."; \
	echo "To try your own key in Settings, paste $(DEMO_USER_KEY)"; \
	./target/debug/mock_llm --addr $(MOCK_ADDR) --keys $(DEMO_PLATFORM_KEY),$(DEMO_USER_KEY) & MOCK_PID=$$!; \
	trap 'kill $$MOCK_PID 2>/dev/null' EXIT INT TERM; \
	ANTHROPIC_BASE_URL=http://$(MOCK_ADDR) ANTHROPIC_API_KEY=$(DEMO_PLATFORM_KEY) KEYWARD_DEMO_MODE=true \
		./target/debug/keyward serve

build: tools ## release build: target/release/keyward + target/site (assets precompressed)
	$(LEPTOS_BUILD) --release
	$(PREPARE_ASSETS_RELEASE)

bench: tools lighthouse-tools ## benchmarks on a release build: time to first token, gateway load (c=1/16/64), the free tier against own keys (SQLite, Postgres), dashboard at 1M rows, page load under Lighthouse
	$(LEPTOS_BUILD) --release
	$(PREPARE_ASSETS_RELEASE)
	$(CARGO) build --release --features ssr --bin mock_llm
	$(CARGO) bench --features ssr --bench ttft
	$(CARGO) bench --features ssr --bench gateway
	$(CARGO) bench --features ssr --bench admission
	$(CARGO) bench --features ssr --bench dashboard
	$(CARGO) bench --features ssr --bench pageload

lint: ## rustfmt and clippy (warnings are errors)
	cargo fmt --check
	$(CARGO) clippy --features ssr --all-targets -- -D warnings
	$(CARGO) clippy --features hydrate --lib --target wasm32-unknown-unknown -- -D warnings

# Without a PostgreSQL server the Postgres tests are left out, visibly (as
# "filtered out"): run, they would fail for want of one.
POSTGRES_TESTS = $(if $(KEYWARD_TEST_POSTGRES_URL),,--skip on_postgres)

unit-and-integration: sdk-tools ## Rust unit and HTTP integration tests (Postgres too when KEYWARD_TEST_POSTGRES_URL is set), both official SDKs included
	@[ -n "$$KEYWARD_TEST_POSTGRES_URL" ] || echo "KEYWARD_TEST_POSTGRES_URL is not set: the Postgres tests are left out"
	KEYWARD_SDK_PYTHON=$(CURDIR)/$(SDK_VENV)/bin/python KEYWARD_SDK_NODE=node \
		timeout 1500 $(CARGO) test --features ssr -- $(POSTGRES_TESTS)

e2e: browser-tools ## Playwright in Debian Chromium against the debug build
	$(CARGO) build --features ssr --bin mock_llm
	cd end2end && npx playwright test

deploy-test: tools browser-tools deploy-tools ## deploy/ for real: nginx + TLS, two instances on PostgreSQL (KEYWARD_TEST_POSTGRES_URL), rolling restart and a database outage under load
	@[ -n "$$KEYWARD_TEST_POSTGRES_URL" ] || { echo "deploy-test needs a PostgreSQL superuser URL in KEYWARD_TEST_POSTGRES_URL (.ci/run sets it when PostgreSQL answers)"; exit 1; }
	$(LEPTOS_BUILD)
	$(PREPARE_ASSETS_DEBUG)
	timeout 900 $(CARGO) test --features ssr --test deploy -- --test-threads 4 --nocapture

test: tools browser-tools ## everything: lint, unit, integration, browser, and the deployment test when PostgreSQL is configured
	$(LEPTOS_BUILD)
	$(PREPARE_ASSETS_DEBUG)
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory unit-and-integration
	$(MAKE) --no-print-directory e2e
	@if [ -n "$$KEYWARD_TEST_POSTGRES_URL" ]; then \
		$(MAKE) --no-print-directory deploy-test; \
	else \
		echo "SKIPPED make deploy-test: it needs PostgreSQL (set KEYWARD_TEST_POSTGRES_URL; .ci/run does when PostgreSQL answers)"; \
	fi
